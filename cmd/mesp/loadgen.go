package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync/atomic"
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
		req := server.ForecastRequest{Functions: make([]server.FunctionCounts, len(b))}
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
// dense model in one run (no split), and every batch split by expert as
// the server splits it, with the routes computed before the clock starts.
func rawRuns(ctx context.Context, dir string, batches [][]forecast.Request, conc int, dur time.Duration) error {
	cfg, err := config.Load("", nil, nil)
	if err != nil {
		return err
	}
	if _, err := onnx.Init(cfg.ORT.ORTLibrary()); err != nil {
		return err
	}
	set, err := forecast.LoadSet(dir, onnx.Options{IntraOpThreads: cfg.ORT.IntraOpThreads}, forecast.Batching{})
	if err != nil {
		return err
	}
	dense := make([][]modelRun, len(batches))
	split := make([][]modelRun, len(batches))
	for i, b := range batches {
		dense[i] = []modelRun{inputRows(set.Dense, b)}
		groups := map[*onnx.Model][]forecast.Request{}
		for _, r := range b {
			rt, err := set.RouteOnly(ctx, r.Counts)
			if err != nil {
				return err
			}
			m, _ := set.ServedModel(rt)
			groups[m] = append(groups[m], r)
		}
		for m, g := range groups {
			split[i] = append(split[i], inputRows(m, g))
		}
	}
	rows := len(batches[0])
	out := map[string]any{"batch": rows, "horizon": manifest.Horizon, "family": set.Dense.Family,
		"note": fmt.Sprintf("%d concurrent callers, no HTTP, no routing", conc)}
	for _, c := range []struct {
		name string
		runs [][]modelRun
	}{{"dense_one_run", dense}, {"split_by_expert", split}} {
		n, err := timeRuns(ctx, c.runs, conc, dur/2)
		if err != nil {
			return err
		}
		var models float64
		for _, r := range c.runs {
			models += float64(len(r))
		}
		out[c.name] = map[string]float64{"forecasts_per_s": n * float64(rows), "batches_per_s": n,
			"runs_per_batch": models / float64(len(c.runs))}
	}
	return json.NewEncoder(os.Stdout).Encode(out)
}

// modelRun is one ONNX Runtime run: a model and its flat input rows.
type modelRun struct {
	model *onnx.Model
	in    []float32
	rows  int
}

func inputRows(m *onnx.Model, reqs []forecast.Request) modelRun {
	in := make([]float32, 0, len(reqs)*m.InputLen)
	for _, r := range reqs {
		for _, v := range r.Counts[len(r.Counts)-m.InputLen:] {
			in = append(in, float32(v))
		}
	}
	return modelRun{m, in, len(reqs)}
}

// timeRuns runs the batches round robin from conc goroutines for dur and
// returns batches per second.
func timeRuns(ctx context.Context, batches [][]modelRun, conc int, dur time.Duration) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, dur)
	defer cancel()
	start := time.Now()
	var next, done atomic.Int64
	errs := make(chan error, conc)
	for range conc {
		go func() {
			for ctx.Err() == nil {
				for _, r := range batches[int(next.Add(1))%len(batches)] {
					if _, err := r.model.Predict(context.Background(), r.in, r.rows); err != nil {
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
	for range conc {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return float64(done.Load()) / time.Since(start).Seconds(), first
}
