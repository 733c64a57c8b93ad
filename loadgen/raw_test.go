package loadgen

import (
	"context"
	"testing"
	"time"

	"github.com/mesp-project/mesp/config"
	"github.com/mesp-project/mesp/forecast"
	"github.com/mesp-project/mesp/internal/fixture"
	"github.com/mesp-project/mesp/onnx"
)

func TestTimeRuns(t *testing.T) {
	if _, err := onnx.Init(config.ORT{}.ORTLibrary()); err != nil {
		t.Fatal(err)
	}
	set, err := forecast.LoadSet(fixture.Models(), onnx.Options{IntraOpThreads: 1}, forecast.Batching{})
	if err != nil {
		t.Fatal(err)
	}
	fns := fixture.Rows(t)
	var batches [][]forecast.Run
	for b := range 2 {
		reqs := make([]forecast.Request, 8)
		for i := range reqs {
			f := fns[b*8+i]
			reqs[i] = forecast.Request{ID: f.ID, Counts: f.Counts[:1200]}
		}
		runs, err := set.Runs(context.Background(), reqs, forecast.Routed)
		if err != nil {
			t.Fatal(err)
		}
		batches = append(batches, runs)
	}
	bps, err := TimeRuns(context.Background(), batches, 2, 300*time.Millisecond)
	if err != nil || bps <= 0 {
		t.Fatalf("%v batches/s, %v", bps, err)
	}
	// A run ONNX Runtime refuses ends the timing with its error.
	bad := []forecast.Run{{Model: set.Dense, Input: make([]float32, 3), Rows: 1}}
	if _, err := TimeRuns(context.Background(), [][]forecast.Run{bad}, 2, time.Second); err == nil {
		t.Fatal("a run with 3 input values for one row of 240 timed without error")
	}
}
