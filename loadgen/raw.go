package loadgen

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/mesp-project/mesp/forecast"
)

// TimeRuns times ONNX Runtime alone, with no HTTP and no routing: the
// ceiling a server can approach on the same work. Conc callers take the
// batches round robin and make each batch's runs in turn, for dur; it
// returns completed batches per second, or the first run's error.
func TimeRuns(ctx context.Context, batches [][]forecast.Run, conc int, dur time.Duration) (float64, error) {
	if len(batches) == 0 {
		return 0, fmt.Errorf("loadgen: no batches to time")
	}
	ctx, cancel := context.WithTimeout(ctx, dur)
	defer cancel()
	start := time.Now()
	var next, done atomic.Int64
	errs := make(chan error, max(1, conc))
	for range max(1, conc) {
		go func() {
			for ctx.Err() == nil {
				for _, r := range batches[int(next.Add(1)-1)%len(batches)] {
					if _, err := r.Model.PredictDense(context.Background(), r.Input, r.Second, r.Rows); err != nil {
						errs <- err
						return
					}
				}
				done.Add(1)
			}
			errs <- nil
		}()
	}
	var first error
	for range max(1, conc) {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return float64(done.Load()) / time.Since(start).Seconds(), first
}
