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
	raw := fs.String("raw", "", "models folder: time Predict on the dense model with no HTTP and no routing")
	if err := fs.Parse(args); err != nil {
		return err
	}
	fns, err := trace.ReadAll(*data, trace.Options{}, trace.All)
	if err != nil {
		return err
	}
	if *raw != "" {
		return rawRuns(ctx, *raw, fns, *batch, *conc, *dur)
	}
	var bodies [][]byte
	for i := 0; i+*batch <= len(fns); i += *batch {
		var req server.ForecastRequest
		for _, f := range fns[i : i+*batch] {
			req.Functions = append(req.Functions, server.FunctionCounts{ID: f.ID, Counts: f.Counts[:*minutes]})
		}
		b, _ := json.Marshal(req)
		bodies = append(bodies, b)
	}
	st, err := loadgen.Run(ctx, loadgen.Options{URL: *url, Bodies: bodies, Rows: *batch, Rate: *rate, Concurrency: *conc, Duration: *dur})
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(st)
}

// rawRuns times the model alone: the ceiling the server can approach.
func rawRuns(ctx context.Context, dir string, fns []trace.Function, batch, conc int, dur time.Duration) error {
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
	m := set.Dense
	in := make([]float32, 0, batch*m.InputLen)
	for i := range batch {
		c := fns[i%len(fns)].Counts[1200-m.InputLen : 1200]
		for _, v := range c {
			in = append(in, float32(v))
		}
	}
	ctx, cancel := context.WithTimeout(ctx, dur)
	defer cancel()
	start := time.Now()
	done := make(chan int)
	for range conc {
		go func() {
			n := 0
			for ctx.Err() == nil {
				if _, err := m.Predict(context.Background(), in, batch); err == nil {
					n++
				}
			}
			done <- n
		}()
	}
	runs := 0
	for range conc {
		runs += <-done
	}
	el := time.Since(start).Seconds()
	return json.NewEncoder(os.Stdout).Encode(map[string]any{"model": m.ID, "family": m.Family, "batch": batch,
		"runs_per_s": float64(runs) / el, "forecasts_per_s": float64(runs*batch) / el, "horizon": manifest.Horizon,
		"note": fmt.Sprintf("%d concurrent callers, no HTTP, no routing", conc)})
}
