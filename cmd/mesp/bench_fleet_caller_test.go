package main

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/mesp-project/mesp/fleetbench"
	"github.com/mesp-project/mesp/internal/fixture"
	"github.com/mesp-project/mesp/internal/servedset"
)

// TestBenchFleetCallsFromItsOwnProcess: with KEDA's calls in a child
// process (bench-fleet-caller, this test binary through TestMain), every
// minute's calls are answered over loopback gRPC and their latencies come
// back from the child; the report says where the calls came from.
func TestBenchFleetCallsFromItsOwnProcess(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	children := 0
	command := func(args ...string) *exec.Cmd {
		children++
		cmd := exec.CommandContext(ctx, exe)
		cmd.Env = append(os.Environ(), "MESP_TEST_MAIN="+strings.Join(args, "\x1f"))
		return cmd
	}
	fc := servedset.Open(t)
	set, _ := fc.Catalog()
	const rate = 300
	rep, err := fleetbench.Run(ctx, fleetbench.Options{Rows: fixture.Rows(t), Functions: 120, Minutes: 2, Sample: 5,
		Predictor: fc, Threshold: set.PrewarmThreshold(), CallRate: rate, Callers: 2, Caller: processCaller(command)})
	if err != nil {
		t.Fatal(err)
	}
	if children != 2 {
		t.Fatalf("%d caller processes for 2 minutes", children)
	}
	if first := rep.Minutes[0]; first.Calls+first.Refused == 0 || float64(first.Calls+first.Refused) > first.WallSeconds*rate+2 {
		t.Fatalf("minute 1: %+v", first)
	}
	if m := rep.Minutes[1]; m.Calls == 0 || m.Refused != 0 || float64(m.Calls) > m.WallSeconds*rate+2 || !(m.GetMetricsP99 > 0) || m.GetMetricsP50 > m.GetMetricsP99 {
		t.Fatalf("minute 2: %+v", m)
	}
	if !strings.Contains(rep.FunctionsPer, "a process of their own") {
		t.Fatalf("the report does not say the calls came from their own process: %q", rep.FunctionsPer)
	}
}
