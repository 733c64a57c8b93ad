package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/spf13/pflag"

	"github.com/mesp-project/mesp/config"
	"github.com/mesp-project/mesp/forecast"
	"github.com/mesp-project/mesp/loadgen"
	"github.com/mesp-project/mesp/manifest"
	"github.com/mesp-project/mesp/onnx"
	"github.com/mesp-project/mesp/server"
	"github.com/mesp-project/mesp/trace"
)

func init() {
	register("loadgen", "drive a forecast endpoint with real counts; or time raw ONNX Runtime runs (--raw)", runLoadgen)
}

func runLoadgen(ctx context.Context, args []string) error {
	fs := pflag.NewFlagSet("loadgen", pflag.ContinueOnError)
	url := fs.String("url", "http://127.0.0.1:8080/v1/forecast", "forecast endpoint")
	data := fs.String("data", "", "Azure-layout CSV(.gz) whose rows become request bodies")
	minutes := fs.Int("minutes", 1200, "minutes of history per function")
	batch := fs.Int("batch", 1, "functions per request")
	rate := fs.Float64("rate", 0, "open-loop requests/s (0: closed loop)")
	conc := fs.Int("concurrency", 8, "callers in closed loop")
	dur := fs.Duration("duration", 10*time.Second, "how long")
	raw := fs.String("raw", "", "models folder: time raw ONNX Runtime runs on the same batches, with no HTTP and no routing")
	outputs := fs.StringSlice("outputs", nil, "the \"outputs\" of each request body (/v1/prewarm: p_invoke, warm, forecast)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	fns, err := trace.ReadAll(*data, trace.Options{}, trace.All)
	if err != nil {
		return err
	}
	batches, err := requestBatches(fns, *batch, *minutes)
	if err != nil {
		return err
	}
	if *raw != "" {
		return rawRuns(ctx, *raw, batches, *conc, *dur)
	}
	bodies := make([][]byte, len(batches))
	for i, b := range batches {
		req := server.ForecastRequest{Functions: make([]server.FunctionCounts, len(b)), Outputs: *outputs}
		for j, r := range b {
			req.Functions[j] = server.FunctionCounts{ID: r.ID, Counts: r.Counts}
		}
		if bodies[i], err = json.Marshal(req); err != nil {
			return err
		}
	}
	st, err := loadgen.Run(ctx, loadgen.Options{URL: *url, Bodies: bodies, Rows: *batch, Rate: *rate, Concurrency: *conc, Duration: *dur})
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(st)
}

// requestBatches groups the data's functions, in file order, into requests
// of batch functions with their first minutes counts: the load generator's
// bodies and the raw runs' batches are the same.
func requestBatches(fns []trace.Function, batch, minutes int) ([][]forecast.Request, error) {
	if batch < 1 || len(fns) < batch {
		return nil, fmt.Errorf("loadgen: %d functions cannot fill a batch of %d", len(fns), batch)
	}
	var out [][]forecast.Request
	for i := 0; i+batch <= len(fns); i += batch {
		b := make([]forecast.Request, batch)
		for j, f := range fns[i : i+batch] {
			if len(f.Counts) < minutes {
				return nil, fmt.Errorf("loadgen: function %s has %d minutes, want %d", f.ID, len(f.Counts), minutes)
			}
			b[j] = forecast.Request{ID: f.ID, Counts: f.Counts[:minutes]}
		}
		out = append(out, b)
	}
	return out, nil
}

// rawRuns times ONNX Runtime alone on the load generator's batches: the
// ceiling the server can approach. Two ceilings: every batch through the
// dense model in one run, and every batch split by expert as the server
// splits it.
func rawRuns(ctx context.Context, dir string, batches [][]forecast.Request, conc int, dur time.Duration) error {
	cfg, err := config.Load("", nil, nil)
	if err != nil {
		return err
	}
	if _, err := onnx.Init(cfg.ORT.ORTLibrary()); err != nil {
		return err
	}
	set, err := forecast.LoadSet(dir, ortOptions(cfg.ORT), forecast.Batching{})
	if err != nil {
		return err
	}
	rows := len(batches[0])
	out := map[string]any{"batch": rows, "horizon": manifest.Horizon, "family": set.Dense.Family,
		"note": fmt.Sprintf("%d concurrent callers, no HTTP, no routing", conc)}
	for _, c := range []struct {
		name string
		mode forecast.Mode
	}{{"dense_one_run", forecast.DenseOnly}, {"split_by_expert", forecast.Routed}} {
		runs := make([][]forecast.Run, len(batches))
		var n float64
		for i, b := range batches {
			if runs[i], err = set.Runs(ctx, b, c.mode); err != nil {
				return err
			}
			n += float64(len(runs[i]))
		}
		bps, err := loadgen.TimeRuns(ctx, runs, conc, dur/2)
		if err != nil {
			return err
		}
		out[c.name] = map[string]float64{"forecasts_per_s": bps * float64(rows), "batches_per_s": bps,
			"runs_per_batch": n / float64(len(batches))}
	}
	return json.NewEncoder(os.Stdout).Encode(out)
}
