package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/pflag"

	"github.com/mesp-project/mesp/fleetbench"
	"github.com/mesp-project/mesp/onnx"
	"github.com/mesp-project/mesp/trace"
)

func init() {
	register("bench-fleet", "decide whole minutes of a fleet built from real days, with KEDA asking meanwhile; report time, CPU per function, memory and latency", runBenchFleet)
}

func runBenchFleet(ctx context.Context, args []string) (err error) {
	fs := pflag.NewFlagSet("bench-fleet", pflag.ContinueOnError)
	data := fs.String("data", "", "Azure-layout CSV(.gz) whose days the fleet is built from")
	fs.String("models", "", "models folder (models)")
	functions := fs.Int("functions", 100000, "functions in the fleet")
	minutes := fs.Int("minutes", 3, "minutes decided")
	sample := fs.Int("sample", 2000, "functions the one-request-per-function baseline answers")
	batch := fs.Int("batch", 256, "functions per model run")
	rate := fs.Float64("keda-rate", -1, "KEDA's GetMetrics calls a second while deciding, on a schedule; 0: closed loop; default: functions / 15 (each ScaledObject's metric read once per HPA sync of 15 s)")
	callers := fs.Int("keda-callers", 5, "concurrent GetMetrics callers, each one call at a time (the HPA controller syncs 5 HPAs at once by default)")
	out := fs.String("out", "", "write the JSON report here (stdout when empty)")
	heap := fs.String("heap-profile", "", "write the live heap's pprof profile after the last minute here (go tool pprof)")
	cpuProfile := fs.String("cpu-profile", "", "write a CPU profile of the decided minutes here (go tool pprof)")
	kedaProcess := fs.Bool("keda-process", false, "KEDA's calls from a process of their own, as KEDA's operator runs apart from MESP (on this machine it takes a core's half from the loop); default: goroutines of the bench's process")
	cfg, err := loadWithData(fs, args, data)
	if err != nil {
		return err
	}
	// the server's own setting, as serve applies it
	applyGoMemoryLimit(cfg.Server)
	rows, err := trace.ReadAll(*data, trace.Options{}, trace.All)
	if err != nil {
		return err
	}
	runs := onnx.NewRunStats()
	fc, err := openServedCounting(cfg, runs)
	if err != nil {
		return err
	}
	defer fc.Close()
	set, _ := fc.Catalog()
	if *rate < 0 {
		*rate = float64(*functions) / 15
	}
	heapProfile, closeHeap, err := optionalFile(*heap, &err)
	if err != nil {
		return err
	}
	defer closeHeap()
	cpuOut, closeCPU, err := optionalFile(*cpuProfile, &err)
	if err != nil {
		return err
	}
	defer closeCPU()
	var caller fleetbench.Caller
	if *kedaProcess {
		command, err := thisBinary(ctx)
		if err != nil {
			return err
		}
		caller = processCaller(command)
	}
	rep, err := fleetbench.Run(ctx, fleetbench.Options{Rows: rows, Functions: *functions, Minutes: *minutes, Sample: *sample, Batch: *batch,
		Workers: cfg.Decide.Workers, Nice: cfg.Decide.Nice, CallRate: *rate, Callers: *callers, Predictor: fc, Runs: runs, Threshold: set.PrewarmThreshold(), HeapProfile: heapProfile, CPUProfile: cpuOut, Caller: caller, Progress: func(s string) { fmt.Fprintln(os.Stderr, "bench-fleet: "+s) }})
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if *out == "" {
		_, err = os.Stdout.Write(append(b, '\n'))
		return err
	}
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		return err
	}
	return os.WriteFile(*out, append(b, '\n'), 0o644)
}

// optionalFile creates path for output written while a command runs (a
// nil writer when path is empty); its close sets *err to the close's
// error where *err holds none.
func optionalFile(path string, err *error) (io.Writer, func(), error) {
	if path == "" {
		return nil, func() {}, nil
	}
	f, ferr := os.Create(path)
	if ferr != nil {
		return nil, nil, ferr
	}
	return f, func() {
		if cerr := f.Close(); *err == nil && cerr != nil {
			*err = cerr
		}
	}, nil
}
