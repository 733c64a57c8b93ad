package forecast

import (
	"context"
	"testing"

	"github.com/mesp-project/mesp/config"
	"github.com/mesp-project/mesp/internal/fixture"
	"github.com/mesp-project/mesp/onnx"
	"github.com/mesp-project/mesp/trace"
)

// BenchmarkPredict is the server's work for one request without HTTP and
// JSON (validate, route, run the models): a forecast (counts) beside a
// pre-warm decision (counts and p_invoke), for one function and for 64.
func BenchmarkPredict(b *testing.B) {
	f, fns := readyForecaster(b, fixture.Models())
	for _, bc := range []struct {
		name string
		outs Outputs
		n    int
	}{
		{"forecast/1", Counts, 1}, {"prewarm/1", Counts | PInvoke, 1},
		{"forecast/64", Counts, 64}, {"prewarm/64", Counts | PInvoke, 64},
		{"p_invoke/1", PInvoke, 1}, {"p_invoke/64", PInvoke, 64},
	} {
		b.Run(bc.name, func(b *testing.B) {
			reqs := make([]Request, bc.n)
			for i := range reqs {
				reqs[i] = Request{ID: fns[i].ID, Counts: fns[i].Counts[:1200]}
			}
			for b.Loop() {
				if _, err := f.Predict(context.Background(), reqs, Routed, bc.outs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRoute is one routing decision for a 1200-minute pattern (the
// fixture's functions in turn: pruning works harder on some than others).
func BenchmarkRoute(b *testing.B) {
	s := loadShipped(b)
	fns := fixture.Rows(b)
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if _, err := s.Router.Route(context.Background(), fns[i%len(fns)].Counts[:1200]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// readyForecaster loads the models in dir (one intra-op thread, no
// batching) and reads the fixture.
func readyForecaster(tb testing.TB, dir string) (*Forecaster, []trace.Function) {
	tb.Helper()
	if _, err := onnx.Init(config.ORT{}.ORTLibrary()); err != nil {
		tb.Fatal(err)
	}
	f := New(dir, onnx.Options{IntraOpThreads: 1}, Batching{})
	if _, err := f.Reload(); err != nil {
		tb.Fatal(err)
	}
	return f, fixture.Rows(tb)
}

// BenchmarkLoadSet is the work of a hot swap: read, verify and load every
// model of the shipped set.
func BenchmarkLoadSet(b *testing.B) {
	loadShipped(b).close()
	for b.Loop() {
		loadShipped(b).close()
	}
}

// loadShipped loads the shipped set (one intra-op thread, no batching).
func loadShipped(tb testing.TB) *Set {
	tb.Helper()
	if _, err := onnx.Init(config.ORT{}.ORTLibrary()); err != nil {
		tb.Fatal(err)
	}
	s, err := LoadSet(fixture.Models(), onnx.Options{IntraOpThreads: 1}, Batching{})
	if err != nil {
		tb.Fatal(err)
	}
	return s
}
