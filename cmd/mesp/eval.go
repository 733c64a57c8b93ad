package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/spf13/pflag"

	"github.com/mesp-project/mesp/backtest"
	"github.com/mesp-project/mesp/config"
	"github.com/mesp-project/mesp/forecast"
	"github.com/mesp-project/mesp/onnx"
	"github.com/mesp-project/mesp/provision"
	"github.com/mesp-project/mesp/report"
)

func init() {
	register("eval", "backtest next-hour forecasts and simulate cold starts / idle memory", runEval)
}

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
	peer := fs.String("peer-lightgbm", "", "CSV function,minute,p_invoke of the LightGBM peer (scripts/peer_lightgbm_minutely.py)")
	peerCounts := fs.String("peer-counts", "", "CSV function,origin,h1..h60 of the LightGBM count peer (scripts/peer_lightgbm_counts.py)")
	peerMean := fs.String("peer-mean", "", "the same CSV of the count peer's mean form (scripts/peer_lightgbm_counts.py --mean)")
	peerQuantiles := fs.String("peer-quantiles", "", "CSV function,minute,q0.5,...,q0.99 of the LightGBM quantile peer (scripts/peer_lightgbm_quantile.py)")
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
	fc, err := openServed(cfg)
	if err != nil {
		return err
	}
	defer fc.Close()
	start := time.Now()
	fmt.Fprintf(os.Stderr, "eval: %d functions (%s part of %s), %d origins\n", len(fns), part, filepath.Base(*data), len(backtest.Origins))
	contenders := append([]backtest.Forecaster{
		{Name: "mesp", Predict: served(fc, forecast.Routed, false)},
		{Name: "dense", Predict: served(fc, forecast.DenseOnly, false)},
	}, backtest.Baselines()...)
	if set, _ := fc.Catalog(); set.ExpectedApart() {
		// forecast is the expected count; the median is scored beside it
		contenders = append(contenders, backtest.Forecaster{Name: report.MespMedian, Predict: served(fc, forecast.Routed, true)})
	}
	if *peerCounts != "" {
		p, err := backtest.FromTable(report.PeerCounts, *peerCounts, fns)
		if err != nil {
			return err
		}
		contenders = append(contenders, p, wholePeer(p))
	}
	if *peerMean != "" {
		p, err := backtest.FromTable(report.PeerMean, *peerMean, fns)
		if err != nil {
			return err
		}
		contenders = append(contenders, p)
	}
	res, err := backtest.Run(ctx, fns, contenders, "mesp", func(done, total int) {
		fmt.Fprintf(os.Stderr, "\reval: backtest %d/%d forecaster-origins, %s   ", done, total, time.Since(start).Round(time.Second))
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr)
	set, _ := fc.Catalog()
	in := provision.Inputs{DefaultThreshold: set.PrewarmThreshold()}
	ids := make([]string, len(fns))
	for i, f := range fns {
		in.Days = append(in.Days, f.Counts)
		ids[i] = f.ID
	}
	if in.HourlyForecasts, err = hourlyLevels(ctx, fc, in.Days); err != nil {
		return err
	}
	var silent provision.SilentInputs
	silent.Days, silent.Hours = provision.SilentCopies(in.Days)
	if set.PInvoke() {
		for _, c := range []struct {
			name string
			mode forecast.Mode
			days [][]float64
			p    *[][]float64
		}{{"mesp", forecast.Routed, in.Days, &in.MespP}, {"dense", forecast.DenseOnly, in.Days, &in.DenseP},
			{"mesp silent", forecast.Routed, silent.Days, &silent.MespP}, {"dense silent", forecast.DenseOnly, silent.Days, &silent.DenseP}} {
			if *c.p, err = minutelyP(ctx, fc, c.mode, c.days, "eval: "+c.name, start); err != nil {
				return err
			}
		}
	} else {
		fmt.Fprintln(os.Stderr, "eval: the models have no p_invoke models: no minutely policies")
	}
	if *peer != "" {
		if in.PeerP, err = provision.ReadPredictions(*peer, ids); err != nil {
			return err
		}
	}
	prov := provision.Evaluate(in)
	var mix provision.Report
	if prov.Silent, mix, err = provision.EvaluateSilent(in, silent); err != nil {
		return err
	}
	prov.PlatformMix = &mix
	// the replica simulation (EVALUATION.md section 4): each minute's
	// count forecast made at its start, MESP's and the dense model's
	sc := provision.ScalingInputs{Days: in.Days, Target: provision.Target}
	if sc.MespMedian, sc.MespMean, sc.MespQuantiles, err = minutelyCounts(ctx, fc, forecast.Routed, in.Days, "eval: mesp", start); err != nil {
		return err
	}
	// the dense model alone has no mean trees: its forecast is its median
	if sc.DenseMedian, _, _, err = minutelyCounts(ctx, fc, forecast.DenseOnly, in.Days, "eval: dense", start); err != nil {
		return err
	}
	if *peerQuantiles != "" {
		if sc.PeerQuantiles, err = provision.ReadQuantilePredictions(*peerQuantiles, ids); err != nil {
			return err
		}
	}
	scaling := provision.EvaluateScaling(sc)
	doc := report.New(res, prov, len(fns))
	doc.Scaling = &scaling
	if *plotDir != "" {
		if err := report.Plots(*plotDir, fns, doc, res); err != nil {
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

// openServed opens the very path the server uses: forecast.Forecaster over
// the configured models folder, with the ONNX Runtime library loaded.
func openServed(cfg config.Config) (*forecast.Forecaster, error) {
	return openServedCounting(cfg, nil)
}

// openServedPInvoke is openServed for a command that needs the set's
// p_invoke models (what for: the error's words); a set without them is
// closed and refused.
func openServedPInvoke(cfg config.Config, what string) (*forecast.Forecaster, error) {
	fc, err := openServed(cfg)
	if err != nil {
		return nil, err
	}
	if set, _ := fc.Catalog(); !set.PInvoke() {
		fc.Close()
		return nil, fmt.Errorf("%s: no p_invoke models %s", cfg.Models, what)
	}
	return fc, nil
}

// openServedCounting is openServed with every model run counted in runs
// (nil: not counted).
func openServedCounting(cfg config.Config, runs *onnx.RunStats) (*forecast.Forecaster, error) {
	fc := servedForecaster(cfg, runs)
	if err := openForecaster(cfg, fc); err != nil {
		return nil, err
	}
	return fc, nil
}

// openForecaster loads fc's set with ONNX Runtime started (fc is closed on
// failure).
func openForecaster(cfg config.Config, fc *forecast.Forecaster) error {
	if _, err := onnx.Init(cfg.ORT.ORTLibrary()); err != nil {
		return err
	}
	if _, err := fc.Reload(); err != nil {
		fc.Close()
		return err
	}
	return nil
}

// servedForecaster is the server's forecast.Forecaster over the
// configured models folder (not loaded yet: Reload), every model run
// counted in runs (nil: not counted).
func servedForecaster(cfg config.Config, runs *onnx.RunStats) *forecast.Forecaster {
	opts := ortOptions(cfg.ORT)
	opts.Stats = runs
	fc := forecast.New(cfg.Models, opts, ortBatching(cfg.ORT))
	fc.SkipTrees = !cfg.Router.CountTrees
	fc.SkipUpper = !cfg.Router.UpperShare
	fc.SkipTimers = !cfg.Router.Timers
	fc.SkipStop = !cfg.Router.Stop
	return fc
}

// minutelyP is the served p_invoke of every minute of the simulated window
// (provision.MinutelyLoop), with a progress line labelled label.
func minutelyP(ctx context.Context, fc *forecast.Forecaster, mode forecast.Mode, days [][]float64, label string, start time.Time) ([][]float64, error) {
	p, err := provision.MinutelyLoop(ctx, days, nextMinute(fc, mode), func(done, total int) {
		fmt.Fprintf(os.Stderr, "\r%s minutely loop %d/%d minutes, %s   ", label, done, total, time.Since(start).Round(time.Second))
	})
	fmt.Fprintln(os.Stderr)
	return p, err
}

// served adapts the serving path to the backtest: its forecast (the
// expected count), or with median its median.
func served(fc *forecast.Forecaster, mode forecast.Mode, median bool) backtest.Predict {
	return func(ctx context.Context, hs [][]float64) ([][]float64, []int, error) {
		res, err := fc.Forecast(ctx, backtestRequests(hs), mode)
		if err != nil {
			return nil, nil, err
		}
		out, cl := backtestAnswers(res, median)
		return out, cl, nil
	}
}

// backtestRequests are histories as forecast requests, named by position.
func backtestRequests(hs [][]float64) []forecast.Request {
	reqs := make([]forecast.Request, len(hs))
	for i, h := range hs {
		reqs[i] = forecast.Request{ID: fmt.Sprint(i), Counts: h}
	}
	return reqs
}

// backtestAnswers are the served results as a backtest scores them: the
// forecast (median: the median) and the cluster, -1 out of distribution.
func backtestAnswers(res []forecast.Result, median bool) ([][]float64, []int) {
	out := make([][]float64, len(res))
	cl := make([]int, len(res))
	for i, r := range res {
		f := r.Forecast
		if median {
			f = r.Median
		}
		out[i], cl[i] = make([]float64, len(f)), r.Cluster
		for h, v := range f {
			out[i][h] = float64(v)
		}
		if r.OOD {
			cl[i] = -1 // out of distribution: reported apart
		}
	}
	return out, cl
}

// wholePeer is the count peer's forecasts rounded as MESP's are
// (forecast.WholeInvocations), so that MESP's rounding is not counted as a
// lead over the peer: rounding is open to any point forecaster.
func wholePeer(p backtest.Forecaster) backtest.Forecaster {
	return backtest.Forecaster{Name: report.PeerCountsWhole, Predict: func(ctx context.Context, hs [][]float64) ([][]float64, []int, error) {
		fc, cl, err := p.Predict(ctx, hs)
		if err != nil {
			return nil, nil, err
		}
		out := make([][]float64, len(fc))
		for i, f := range fc {
			level := make([]float32, len(f))
			for h, v := range f {
				level[h] = float32(v)
			}
			out[i] = make([]float64, len(f))
			for h, v := range forecast.WholeInvocations(level) {
				out[i][h] = float64(v)
			}
		}
		return out, cl, nil
	}}
}

// hourlyLevels are MESP's count forecasts at the backtest's origins before
// rounding (forecast.Result.Level), [function][origin][minute]: the hourly
// policy of before thresholds them below one invocation, where whole
// invocations would make every threshold up to 0.5 the same.
func hourlyLevels(ctx context.Context, fc *forecast.Forecaster, days [][]float64) ([][][]float64, error) {
	out := make([][][]float64, len(days))
	for oi, t := range backtest.Origins {
		reqs := make([]forecast.Request, len(days))
		for i, d := range days {
			reqs[i] = forecast.Request{ID: strconv.Itoa(i), Counts: d[:t]}
		}
		res, err := fc.Forecast(ctx, reqs, forecast.Routed)
		if err != nil {
			return nil, err
		}
		for i, r := range res {
			if oi == 0 {
				out[i] = make([][]float64, len(backtest.Origins))
			}
			out[i][oi] = make([]float64, len(r.Level))
			for h, v := range r.Level {
				out[i][oi][h] = float64(v)
			}
		}
	}
	return out, nil
}

// nextMinute adapts the serving path's p_invoke to the platform's loop:
// the probability for the minute after each history.
// minutelyCounts is the served count forecast of every minute of the
// simulated window, made at its start (the replica simulation's input),
// from one model run per minute: the median of that minute, and the
// expected counts and every served quantile of it and the minutes after
// it (ahead: per function and minute, provision.Leads' largest).
func minutelyCounts(ctx context.Context, fc *forecast.Forecaster, mode forecast.Mode, days [][]float64, label string, start time.Time) (median [][]float64, mean [][][]float64, quantiles []provision.QuantileAhead, err error) {
	lead := slices.Max(provision.Leads)
	outs := forecast.Counts
	if mode == forecast.Routed {
		outs |= forecast.Quantiles
	}
	// per series (the mean, then each quantile): [minute][function][minute ahead]
	var byMinute [][][][]float64
	var levels []float64
	var interpolated []bool
	aheadOf := func(c []float32) []float64 {
		a := make([]float64, min(lead, len(c)))
		for h := range a {
			a[h] = float64(c[h])
		}
		return a
	}
	median, err = provision.MinutelyLoop(ctx, days, func(ctx context.Context, hs [][]float64) ([]float64, error) {
		res, err := fc.Predict(ctx, backtestRequests(hs), mode, outs)
		if err != nil {
			return nil, err
		}
		med := make([]float64, len(res))
		if byMinute == nil && len(res) > 0 {
			var served []float64
			for _, q := range res[0].Quantiles {
				served = append(served, q.Q)
			}
			levels, interpolated = provision.QuantileGrid(served)
			byMinute = make([][][][]float64, 1+len(levels))
		}
		for k := range byMinute {
			byMinute[k] = append(byMinute[k], make([][]float64, len(res)))
		}
		for i, r := range res {
			med[i] = float64(r.Median[0])
			byMinute[0][len(byMinute[0])-1][i] = aheadOf(r.Forecast)
			series := r.QuantileSeries()
			for k, q := range levels {
				c, ok := forecast.QuantileAt(series, q)
				if !ok {
					return nil, fmt.Errorf("%s: no quantile %v", r.ID, q)
				}
				byMinute[1+k][len(byMinute[1+k])-1][i] = aheadOf(c)
			}
		}
		return med, nil
	}, func(done, total int) {
		fmt.Fprintf(os.Stderr, "\r%s minutely counts %d/%d minutes, %s   ", label, done, total, time.Since(start).Round(time.Second))
	})
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return nil, nil, nil, err
	}
	byFunction := func(series [][][]float64) [][][]float64 {
		out := make([][][]float64, len(days))
		for i := range days {
			out[i] = make([][]float64, len(series))
			for m := range series {
				out[i][m] = series[m][i]
			}
		}
		return out
	}
	mean = byFunction(byMinute[0])
	for k, q := range levels {
		quantiles = append(quantiles, provision.QuantileAhead{Q: q, Ahead: byFunction(byMinute[1+k]), Interpolated: interpolated[k]})
	}
	return median, mean, quantiles, nil
}

func nextMinute(fc *forecast.Forecaster, mode forecast.Mode) provision.NextMinute {
	return func(ctx context.Context, hs [][]float64) ([]float64, error) {
		reqs := make([]forecast.Request, len(hs))
		for i, h := range hs {
			reqs[i] = forecast.Request{ID: strconv.Itoa(i), Counts: h}
		}
		res, err := fc.Predict(ctx, reqs, mode, forecast.PInvoke)
		if err != nil {
			return nil, err
		}
		out := make([]float64, len(res))
		for i, r := range res {
			out[i] = float64(r.PInvoke[0])
		}
		return out, nil
	}
}
