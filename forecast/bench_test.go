package forecast

import (
	"context"
	"testing"

	"github.com/mesp-project/mesp/config"
	"github.com/mesp-project/mesp/internal/fixture"
	"github.com/mesp-project/mesp/onnx"
	"github.com/mesp-project/mesp/trace"
)

// BenchmarkForecastBatch64 is the server's work for one 64-function
// request without HTTP and JSON: validate, route, run the models.
func BenchmarkForecastBatch64(b *testing.B) {
	f, fns := readyForecaster(b, fixture.Models())
	reqs := make([]Request, 64)
	for i := range reqs {
		reqs[i] = Request{ID: fns[i].ID, Counts: fns[i].Counts[:1200]}
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := f.Forecast(context.Background(), reqs, Routed); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRoute is one routing decision for a 1200-minute pattern (the
// fixture's functions in turn: pruning works harder on some than others).
func BenchmarkRoute(b *testing.B) {
	if _, err := onnx.Init(config.ORT{}.ORTLibrary()); err != nil {
		b.Fatal(err)
	}
	s, err := LoadSet(fixture.Models(), onnx.Options{IntraOpThreads: 1}, Batching{})
	if err != nil {
		b.Fatal(err)
	}
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
