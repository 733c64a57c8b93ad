package forecast

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/mesp-project/mesp/config"
	"github.com/mesp-project/mesp/internal/fixture"
	"github.com/mesp-project/mesp/manifest"
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

// BenchmarkModelRun is ONNX Runtime alone on the fixture's 1200-minute
// histories, one run of 1 and of 64 rows: the dense count model, the dense
// p_invoke graph (answering its features where experts continue it), and
// each served p_invoke expert that continues the dense trees (fed the
// dense graph's features and minute 1). scripts/time_onnx.py times the
// same files from Python.
func BenchmarkModelRun(b *testing.B) {
	s := loadShipped(b)
	fns := fixture.Rows(b)
	models := []*onnx.Model{s.Dense, s.PDense}
	for _, c := range slices.Sorted(maps.Keys(s.PExperts)) {
		if s.PExperts[c].DenseP1 {
			models = append(models, s.PExperts[c])
		}
	}
	for _, m := range models {
		for _, n := range []int{1, 64} {
			var in, dense []float32
			for i := range n {
				switch {
				case m.DenseP1:
					y, err := s.PDense.Predict(context.Background(), appendPInvokeInput(nil, fns[i].Counts[:1200], s.PDense.InputLen), 1)
					if err != nil {
						b.Fatal(err)
					}
					in, dense = append(in, y[s.PDense.Horizon:]...), append(dense, y[0])
				case m.Output == manifest.PInvokeOutputName:
					in = appendPInvokeInput(in, fns[i].Counts[:1200], m.InputLen)
				default:
					in = appendInput(in, fns[i].Counts[:1200], m.InputLen)
				}
			}
			b.Run(fmt.Sprintf("%s/%d", m.ID, n), func(b *testing.B) {
				for b.Loop() {
					if _, err := m.PredictDense(context.Background(), in, dense, n); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/1e3/float64(b.N*n), "us/row")
			})
		}
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
// batching, no timers' expert: these tests check the count models'
// routing and blends, which timer-like fixture rows would bypass; the
// behaviour suite serves as shipped) and reads the fixture.
func readyForecaster(tb testing.TB, dir string) (*Forecaster, []trace.Function) {
	tb.Helper()
	if _, err := onnx.Init(config.ORT{}.ORTLibrary()); err != nil {
		tb.Fatal(err)
	}
	f := New(dir, onnx.Options{IntraOpThreads: 1}, Batching{})
	f.SkipTimers = true
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
