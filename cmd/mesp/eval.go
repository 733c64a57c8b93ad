package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"

	"github.com/mesp-project/mesp/backtest"
	"github.com/mesp-project/mesp/config"
	"github.com/mesp-project/mesp/forecast"
	"github.com/mesp-project/mesp/onnx"
	"github.com/mesp-project/mesp/provision"
	"github.com/mesp-project/mesp/report"
	"github.com/mesp-project/mesp/trace"
)

func init() {
	register("eval", "backtest next-hour forecasts and simulate cold starts / idle memory", runEval)
}

// Thresholds of the MESP pre-warming curve (forecast invocations/minute).
var prewarmThresholds = []float64{0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 2}

// shortKeepAlive backs forecast pre-warming in the mesp_prewarm_ka policy:
// half the standard 10 minutes, fixed a priori.
const shortKeepAlive = 5

func runEval(ctx context.Context, args []string) error {
	fs := pflag.NewFlagSet("eval", pflag.ContinueOnError)
	cfgPath := fs.String("config", "", "YAML config file")
	data := fs.String("data", "", "Azure-layout CSV or CSV.gz to evaluate on (functions new to the models)")
	partName := fs.String("part", "all", "split part to evaluate: all, test or train")
	fs.String("models", "", "models folder (models)")
	fs.String("ort-library", "", "libonnxruntime.so path (ort.library)")
	out := fs.String("out", "", "write the JSON here instead of stdout")
	plotDir := fs.String("plots", "", "folder for PNG plots (none if empty)")
	skipBad := fs.Bool("skip-bad", false, "skip invalid rows instead of failing")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *data == "" {
		return fmt.Errorf("--data is required")
	}
	cfg, err := config.Load(*cfgPath, fs, map[string]string{"ort-library": "ort.library"})
	if err != nil {
		return err
	}
	fns, part, err := readPart(*data, *partName, *skipBad)
	if err != nil {
		return err
	}
	if _, err := onnx.Init(cfg.ORT.ORTLibrary()); err != nil {
		return err
	}
	// The very path the server uses: forecast.Forecaster over the folder.
	fc := forecast.New(cfg.Models, onnx.Options{IntraOpThreads: cfg.ORT.IntraOpThreads, Provider: cfg.ORT.Provider, CUDADevice: cfg.ORT.CUDADevice},
		forecast.Batching{Wait: cfg.ORT.BatchWait, MaxRows: cfg.ORT.MaxBatch})
	if _, err := fc.Reload(); err != nil {
		return err
	}
	defer fc.Close()
	start := time.Now()
	fmt.Fprintf(os.Stderr, "eval: %d functions (%s part of %s), %d origins\n", len(fns), part, filepath.Base(*data), len(backtest.Origins))
	contenders := append([]backtest.Forecaster{
		{Name: "mesp", Predict: served(fc, forecast.Routed)},
		{Name: "dense", Predict: served(fc, forecast.DenseOnly)},
	}, backtest.Baselines()...)
	res, err := backtest.Run(ctx, fns, contenders, "mesp", func(done, total int) {
		fmt.Fprintf(os.Stderr, "\reval: backtest %d/%d forecaster-origins, %s   ", done, total, time.Since(start).Round(time.Second))
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr)
	prov := provisioning(fns, res)
	doc := report.New(res, prov, len(fns))
	if *plotDir != "" {
		if err := report.Plots(*plotDir, fns, res, prov); err != nil {
			return err
		}
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "eval: done in %s\n%s", time.Since(start).Round(time.Second), report.Table(doc))
	if *out == "" {
		_, err = os.Stdout.Write(append(b, '\n'))
		return err
	}
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		return err
	}
	return os.WriteFile(*out, append(b, '\n'), 0o644)
}

// served adapts the serving path to the backtest.
func served(fc *forecast.Forecaster, mode forecast.Mode) backtest.Predict {
	return func(ctx context.Context, hs [][]float64) ([][]float64, []int, error) {
		reqs := make([]forecast.Request, len(hs))
		for i, h := range hs {
			reqs[i] = forecast.Request{ID: fmt.Sprint(i), Counts: h}
		}
		res, err := fc.Forecast(ctx, reqs, mode)
		if err != nil {
			return nil, nil, err
		}
		out := make([][]float64, len(res))
		cl := make([]int, len(res))
		for i, r := range res {
			out[i], cl[i] = r.Forecast, r.Cluster
			if r.OOD {
				cl[i] = -1 // out of distribution: reported apart
			}
		}
		return out, cl, nil
	}
}

// provisioning runs §2's policies for every function.
func provisioning(fns []trace.Function, res *backtest.Result) map[string]provision.Outcome {
	out := map[string]provision.Outcome{}
	add := func(name string, o provision.Outcome) {
		cur := out[name]
		cur.Add(o)
		out[name] = cur
	}
	for i, f := range fns {
		add("keepalive10", provision.Simulate(f.Counts, provision.KeepAlive(f.Counts, 10)))
		warm, fallback := provision.HybridHistogram(f.Counts, provision.Start-1)
		o := provision.Simulate(f.Counts, warm)
		if fallback {
			o.FallbackFunctions = 1
		}
		add("hybrid_histogram", o)
		ka := provision.KeepAlive(f.Counts, shortKeepAlive)
		for _, th := range prewarmThresholds {
			pre := provision.ForecastPrewarm(res.Forecasts["mesp"][i], th)
			add(fmt.Sprintf("mesp_prewarm@%g", th), provision.Simulate(f.Counts, pre))
			add(fmt.Sprintf("mesp_prewarm_ka%d@%g", shortKeepAlive, th), provision.Simulate(f.Counts, provision.Union(pre, ka)))
		}
	}
	return out
}
