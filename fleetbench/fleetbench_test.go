package fleetbench_test

import (
	"context"
	"strings"
	"testing"

	"github.com/mesp-project/mesp/fleetbench"
	"github.com/mesp-project/mesp/internal/fixture"
	"github.com/mesp-project/mesp/internal/servedset"
	"github.com/mesp-project/mesp/onnx"
)

// TestSmallFleet runs the benchmark on 250 functions from the fixture's
// 100 days: every function is decided every minute, KEDA's calls are
// refused while the first table is decided and answered from the
// previous minute's table after it, and the baseline and memory figures
// are filled.
func TestSmallFleet(t *testing.T) {
	runs := onnx.NewRunStats()
	fc := servedset.OpenCounting(t, runs)
	set, _ := fc.Catalog()
	rep, err := fleetbench.Run(context.Background(), fleetbench.Options{Rows: fixture.Rows(t), Functions: 250, Minutes: 2, Sample: 20,
		Predictor: fc, Runs: runs, Threshold: set.PrewarmThreshold()})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Minutes) != 2 {
		t.Fatalf("%d minutes reported, want 2", len(rep.Minutes))
	}
	for k, m := range rep.Minutes {
		if m.Functions+m.Skipped != 250 || m.Functions < 240 || !(m.CPUUsPerFunc > 0) || !(m.WallSeconds > 0) {
			t.Fatalf("minute %d: %+v", k+1, m)
		}
		// every decided function's p_invoke starts from the dense graph's
		dense := m.Models[set.Manifest.Dense.PInvoke.ID]
		if dense.Rows < int64(m.Functions) || !(dense.Seconds > 0) || dense.UsPerRow != 1e6*dense.Seconds/float64(dense.Rows) {
			t.Fatalf("minute %d: the dense p_invoke graph's runs %+v for %d functions (models %v)", k+1, dense, m.Functions, m.Models)
		}
	}
	if rep.Minutes[1].Calls == 0 || !(rep.TableGetMetricsP99 > 0) || !(rep.PerRequestCPUUsPerFunc > 0) || rep.PerRequestSample != 20 || !(rep.PeakRSSMiB > 0) {
		t.Fatalf("report %+v", rep)
	}
	// KEDA's calls on a schedule: never more than the rate allows in the
	// minute's wall time (call k starts k/rate seconds in, at the earliest)
	const rate = 200
	paced, err := fleetbench.Run(context.Background(), fleetbench.Options{Rows: fixture.Rows(t), Functions: 250, Minutes: 2, Sample: 5,
		Predictor: fc, Threshold: set.PrewarmThreshold(), CallRate: rate})
	if err != nil {
		t.Fatal(err)
	}
	for k, m := range paced.Minutes {
		if n := m.Calls + m.Refused; n == 0 || float64(n) > m.WallSeconds*rate+1 {
			t.Fatalf("minute %d at %d calls a second: %d calls in %.2f s", k+1, rate, n, m.WallSeconds)
		}
	}
	// while the first table is decided, KEDA's calls are refused, not
	// computed; from then on the table answers them all
	if first, second := paced.Minutes[0], paced.Minutes[1]; first.Refused == 0 || second.Refused != 0 || second.Calls == 0 {
		t.Fatalf("refused calls: %d in the first minute, %d in the second (answered %d); want some, then none", first.Refused, second.Refused, second.Calls)
	}
	if paced.CallRate != rate || !strings.Contains(paced.FunctionsPer, "open loop") || !strings.Contains(rep.FunctionsPer, "closed loop") {
		t.Fatalf("the reports do not say how KEDA's calls were sent: %q, %q", paced.FunctionsPer, rep.FunctionsPer)
	}
}
