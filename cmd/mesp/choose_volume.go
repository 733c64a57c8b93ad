package main

import (
	"context"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/mesp-project/mesp/backtest"
	"github.com/mesp-project/mesp/forecast"
	"github.com/mesp-project/mesp/manifest"
	"github.com/mesp-project/mesp/trace"
)

func init() {
	register("choose-volume", "fix how a models folder's expected count meets the hour's volume (the sparse rule for small functions, the mean trees' scale) on the validation functions' hour figures, as served", runChooseVolume)
}

// The candidates of the sparse rule: daily totals under which it answers,
// and how many recent minutes give the size of an invocation.
var (
	sparseBelowDaily = []float64{1e3, 3e3, 1e4, 3e4}
	sparseLook       = []int{120, 240, 480}
)

// sparseSteady is whether the candidates test a steady Poisson rate
// first (manifest.Sparse.Steady). It is not chosen: a stationary rate's
// expected count is the rate (the p_invoke models' answer fell 15-25%
// short of it), and on the validation functions the test moved the hour
// figures by at most 0.001 in any band of daily total.
const sparseSteady = true

// sparseHalfLife and sparseCap are how every candidate sizes an
// invocation (manifest.Sparse.HalfLife and Cap), not chosen either: the
// plain mean of the last two hours' invoked minutes kept a level that
// stepped down half an hour ago (10 calls a minute to 1: the next hour
// forecast at 392, 53 came) and took one burst for the size of every
// call (500 on 0.5 a minute: 306 forecast, 25 came). On the validation
// functions half-lives of 10, 15 and 30 minutes gave the same hour
// figures (WAPE within 0.0003, every band's bias within 0.03): 15 follows
// a step sooner than 30 and averages more calls than 10.
const (
	sparseHalfLife = 15
	sparseCap      = 0.99
)

// sparseWAPESlack is how much the overall hour WAPE may grow over the set
// without the rule: the rule buys an unbiased hour for small functions,
// whose volume is a small share of the whole, and must not pay for it with
// the large functions' accuracy.
const sparseWAPESlack = 1.01

// volumeChoice is one candidate: the sparse rule (nil: none), the mean
// trees' scale fitted with it, and the served set's backtest with both.
type volumeChoice struct {
	sparse *manifest.Sparse
	scale  float64
	rows   int // the mean trees' rows the scale was fitted on
	res    *backtest.Result
}

// runChooseVolume backtests the served forecaster on the validation
// functions without the sparse rule and with each candidate. With each,
// the mean trees' scale is the ratio estimator over the rows they answer
// (the rule's and the timers' aside): the sum of those rows' hours over
// the sum of their forecasts. It writes the candidate with the smallest
// summed distance of the bands' hour bias from 1, then the lowest hour
// WAPE (overall hour WAPE within sparseWAPESlack of the set without it),
// into the manifest's "sparse" entry (none qualifies: removed) and its
// scale into "mean".
func runChooseVolume(ctx context.Context, args []string) error {
	cfg, fns, err := validationCommand("choose-volume", args)
	if err != nil {
		return err
	}
	var doc map[string]any
	if err := manifest.Read(filepath.Join(cfg.Models, "manifest.json"), &doc); err != nil {
		return err
	}
	original := map[string]any{"sparse": doc["sparse"], "mean": doc["mean"]}
	restore := func() {
		for k, v := range original {
			_ = writeManifestEntry(cfg.Models, k, v)
		}
	}
	mean, _ := doc["mean"].(map[string]any)
	// withScale is the mean entry with scale c (1: none)
	withScale := func(c float64) any {
		if mean == nil {
			return nil
		}
		m := maps.Clone(mean)
		delete(m, "scale")
		if c != 1 {
			m["scale"] = c
		}
		return m
	}
	if err := writeManifestEntry(cfg.Models, "mean", withScale(1)); err != nil {
		return err
	}
	score := func(sp *manifest.Sparse) (volumeChoice, error) {
		var entry any
		if sp != nil {
			entry = sp
		}
		if err := writeManifestEntry(cfg.Models, "sparse", entry); err != nil {
			return volumeChoice{}, err
		}
		fc, err := openServed(cfg)
		if err != nil {
			return volumeChoice{}, err
		}
		defer fc.Close()
		if set, _ := fc.Catalog(); !set.PInvoke() {
			return volumeChoice{}, fmt.Errorf("%s: no p_invoke models for the sparse rule", cfg.Models)
		}
		return scoreVolume(ctx, fns, fc, sp)
	}
	base, err := score(nil)
	if err != nil {
		restore()
		return err
	}
	fmt.Fprintf(os.Stderr, "choose-volume: %d validation functions; without the sparse rule: %s\n", len(fns), base.describe())
	best := base
	bestDist := sparseBiasDistance(base.res)
	for _, below := range sparseBelowDaily {
		for _, look := range sparseLook {
			sp := &manifest.Sparse{BelowDaily: below, Look: look, Steady: sparseSteady, HalfLife: sparseHalfLife, Cap: sparseCap}
			c, err := score(sp)
			if err != nil {
				restore()
				return err
			}
			d := sparseBiasDistance(c.res)
			wape := c.res.Forecasters["mesp"].HourWAPE
			ok := wape <= sparseWAPESlack*base.res.Forecasters["mesp"].HourWAPE
			fmt.Fprintf(os.Stderr, "choose-volume: below %g a day, last %d minutes: %s; bias distance %.3f%s\n",
				below, look, c.describe(), d, map[bool]string{true: "", false: " (hour WAPE over the slack)"}[ok])
			if ok && (d < bestDist || d == bestDist && wape < best.res.Forecasters["mesp"].HourWAPE) {
				best, bestDist = c, d
				sp.ChosenOn = fmt.Sprintf("%d validation functions of the training part (mesp choose-volume): of daily totals %v and looks %v (steady test %v, sizes weighted by a %g-minute half-life and capped at the %g quantile), "+
					"the smallest sum over bands of daily total of |hour bias - 1| (two decimals), then the lowest hour WAPE, with the overall hour WAPE within %.0f%% of the set without the rule; "+
					"without: %s; with: %s", len(fns), sparseBelowDaily, sparseLook, sparseSteady, float64(sparseHalfLife), sparseCap, 100*(sparseWAPESlack-1), base.describe(), c.describe())
			}
		}
	}
	var entry any
	if best.sparse != nil {
		entry = best.sparse
	}
	if err := writeManifestEntry(cfg.Models, "sparse", entry); err != nil {
		restore()
		return err
	}
	if m, ok := withScale(best.scale).(map[string]any); ok {
		val, _ := m["validation"].(map[string]any)
		val = maps.Clone(val)
		if val == nil {
			val = map[string]any{}
		}
		val["scale_fitted_on"] = fmt.Sprintf("mesp choose-volume: the sum of the hours over the sum of the forecasts of the %d rows (function and origin) of %d validation functions the mean trees answer, "+
			"the sparse rule chosen with it and the timers' aside; the set with it: %s", best.rows, len(fns), best.describe())
		m["validation"] = val
		if err := writeManifestEntry(cfg.Models, "mean", m); err != nil {
			restore()
			return err
		}
	}
	if best.sparse == nil {
		fmt.Fprintln(os.Stderr, "choose-volume: no candidate brought the bands' hour bias closer to 1 within the WAPE slack: no sparse rule")
	} else {
		fmt.Fprintf(os.Stderr, "choose-volume: sparse below %g a day, last %d minutes\n", best.sparse.BelowDaily, best.sparse.Look)
	}
	fmt.Fprintf(os.Stderr, "choose-volume: mean trees' scale %.4f\n", best.scale)
	return nil
}

// scoreVolume backtests fc (whose manifest holds sparse rule sp and no
// mean scale) on fns, fits the mean trees' scale on the rows they answer
// and backtests the same forecasts with it: the server's answer with the
// scale in the manifest, without running the models twice.
func scoreVolume(ctx context.Context, fns []trace.Function, fc *forecast.Forecaster, sp *manifest.Sparse) (volumeChoice, error) {
	meanRow := make([][]bool, 0, len(backtest.Origins)) // [origin][function]
	record := func(ctx context.Context, hs [][]float64) ([][]float64, []int, error) {
		res, err := fc.Forecast(ctx, backtestRequests(hs), forecast.Routed)
		if err != nil {
			return nil, nil, err
		}
		rows := make([]bool, len(res))
		for i, r := range res {
			rows[i] = r.Mean != nil && r.Sparse == nil && r.Timer == nil
		}
		meanRow = append(meanRow, rows)
		out, cl := backtestAnswers(res, false)
		return out, cl, nil
	}
	first, err := backtest.Run(ctx, fns, []backtest.Forecaster{{Name: "mesp", Predict: record}}, "mesp", nil)
	if err != nil {
		return volumeChoice{}, err
	}
	c := volumeChoice{sparse: sp, scale: 1, res: first}
	var hours, forecasts float64
	for oi, t := range backtest.Origins {
		for i, f := range fns {
			if !meanRow[oi][i] {
				continue
			}
			c.rows++
			for h, v := range first.Forecasts["mesp"][i][oi] {
				forecasts += v
				hours += f.Counts[t+h]
			}
		}
	}
	if c.rows == 0 || forecasts <= 0 {
		return c, nil
	}
	c.scale = math.Round(min(2, max(0.5, hours/forecasts))*1e4) / 1e4
	call := 0
	scaled := func(_ context.Context, hs [][]float64) ([][]float64, []int, error) {
		oi := call
		call++
		out, cl := make([][]float64, len(hs)), make([]int, len(hs))
		for i := range hs {
			f := first.Forecasts["mesp"][i][oi]
			out[i], cl[i] = f, first.Routes[i][oi]
			if meanRow[oi][i] {
				out[i] = make([]float64, len(f))
				for h, v := range f {
					out[i][h] = float64(float32(v) * float32(c.scale))
				}
			}
		}
		return out, cl, nil
	}
	if c.res, err = backtest.Run(ctx, fns, []backtest.Forecaster{{Name: "mesp", Predict: scaled}}, "mesp", nil); err != nil {
		return volumeChoice{}, err
	}
	return c, nil
}

// describe is the candidate's scale and hour figures, in words.
func (c volumeChoice) describe() string {
	return fmt.Sprintf("mean scale %.4f; %s", c.scale, hourFigures(c.res))
}

// sparseBiasDistance is the sum over bands of daily total of MESP's |hour
// bias - 1|, to two decimals (closer is noise; the hour WAPE decides).
func sparseBiasDistance(res *backtest.Result) float64 {
	var d float64
	for _, b := range res.ByVolume {
		d += math.Abs(b.Scores["mesp"].HourBias - 1)
	}
	return math.Round(d*100) / 100
}

// hourFigures is the hour's WAPE and bias overall and by band, in words.
func hourFigures(res *backtest.Result) string {
	m := res.Forecasters["mesp"]
	var bands []string
	for _, b := range res.ByVolume {
		bands = append(bands, fmt.Sprintf("%s %.3f/%.3f", b.Band, b.Scores["mesp"].HourBias, b.Scores["mesp"].HourWAPE))
	}
	return fmt.Sprintf("hour WAPE %.4f, bias %.3f; by band (bias/WAPE) %s", m.HourWAPE, m.HourBias, strings.Join(bands, ", "))
}
