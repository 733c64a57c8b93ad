package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"

	"github.com/spf13/pflag"

	"github.com/mesp-project/mesp/fleetbench"
)

func init() {
	register("bench-fleet-caller", "KEDA's side of bench-fleet in a process of its own: GetMetrics calls until stdin closes, then their latencies as JSON on stdout", runBenchFleetCaller)
}

func runBenchFleetCaller(ctx context.Context, args []string) error {
	fs := pflag.NewFlagSet("bench-fleet-caller", pflag.ContinueOnError)
	addr := fs.String("addr", "", "the scaler's gRPC address")
	functions := fs.Int("functions", 0, "functions fleet/0..N-1 to ask about")
	rate := fs.Float64("rate", 0, "calls a second on a schedule; 0: closed loop")
	callers := fs.Int("callers", 1, "concurrent callers")
	seed := fs.Uint64("seed", 1, "seed of the functions asked about")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *addr == "" || *functions < 1 {
		return fmt.Errorf("--addr and --functions are required")
	}
	stop := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin) // the bench closes it when the minute is decided
		close(stop)
	}()
	stats, err := fleetbench.RunCaller(ctx, *addr, *functions, *rate, *callers, *seed, stop)
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(stats)
}

// processCaller runs each minute's calls in a child process of this
// binary (bench-fleet-caller), as KEDA's operator runs apart from MESP;
// command makes the child's command from its arguments.
func processCaller(command func(args ...string) *exec.Cmd) fleetbench.Caller {
	return func(addr string, n int, rate float64, callers int, seed uint64) (func() (fleetbench.CallStats, error), error) {
		cmd := command("bench-fleet-caller", "--addr", addr, "--functions", strconv.Itoa(n),
			"--rate", strconv.FormatFloat(rate, 'g', -1, 64), "--callers", strconv.Itoa(callers), "--seed", strconv.FormatUint(seed, 10))
		cmd.Stderr = os.Stderr
		in, err := cmd.StdinPipe()
		if err != nil {
			return nil, err
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("bench-fleet: KEDA's caller: %w", err)
		}
		return func() (fleetbench.CallStats, error) {
			var stats fleetbench.CallStats
			in.Close()
			derr := json.NewDecoder(out).Decode(&stats)
			if err := cmd.Wait(); err != nil {
				return stats, fmt.Errorf("bench-fleet: KEDA's caller: %w", err)
			}
			if derr != nil {
				return stats, fmt.Errorf("bench-fleet: KEDA's caller's answer: %w", derr)
			}
			return stats, nil
		}, nil
	}
}

// thisBinary makes a command that runs this binary with args.
func thisBinary(ctx context.Context) (func(args ...string) *exec.Cmd, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return func(args ...string) *exec.Cmd { return exec.CommandContext(ctx, exe, args...) }, nil
}
