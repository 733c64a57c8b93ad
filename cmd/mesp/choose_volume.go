package main

import (
	"context"
	"fmt"
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
	register("choose-volume", "fix how a models folder's expected count meets the hour's volume (the sparse rule for small functions, the share of the upper quantile above the level) on the validation functions' hour figures, as served", runChooseVolume)
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

// expectedQuantile is the served level whose distance above the level
// the expected count takes a share of (manifest.Expected). On the
// validation functions the 0.9 level raised the hour's volume of the
// functions the count models answer to unbiased at a lower hour WAPE than
// the 0.99 level or one factor on every forecast (docs/research.md).
const expectedQuantile = 0.9

// volumeChoice is one candidate: the sparse rule (nil: none), the
// expected count's share fitted with it, and the served set's backtest
// with both.
type volumeChoice struct {
	sparse *manifest.Sparse
	share  float64
	rows   int // the rows the share was fitted on
	res    *backtest.Result
}

// runChooseVolume backtests the served forecaster on the validation
// functions without the sparse rule and with each candidate. With each,
// the expected count's share (manifest.Expected) is the ratio estimator
// over the rows it applies to (the rule's and the timers' aside): the sum
// of those rows' hours less the sum of their levels, over the sum of the
// served upper quantile's distance above the level. It writes the
// candidate with the smallest summed distance of the bands' hour bias
// from 1, then the lowest hour WAPE (overall hour WAPE within
// sparseWAPESlack of the set without it), into the manifest's "sparse"
// entry (none qualifies: removed) and its share into "expected".
func runChooseVolume(ctx context.Context, args []string) error {
	cfg, fns, err := validationCommand("choose-volume", args)
	if err != nil {
		return err
	}
	var doc map[string]any
	if err := manifest.Read(filepath.Join(cfg.Models, "manifest.json"), &doc); err != nil {
		return err
	}
	original := map[string]any{"sparse": doc["sparse"], "expected": doc["expected"]}
	restore := func() {
		for k, v := range original {
			_ = writeManifestEntry(cfg.Models, k, v)
		}
	}
	m, err := manifest.ReadManifest(cfg.Models)
	if err != nil {
		return err
	}
	upper := m.Level(expectedQuantile) >= 0
	if !upper {
		fmt.Fprintf(os.Stderr, "choose-volume: %s serves no q%g: the expected count is the level (no expected entry)\n", cfg.Models, expectedQuantile)
	}
	var unfitted any // the expected entry the candidates are scored with: share 0
	if upper {
		unfitted = &manifest.Expected{Quantile: expectedQuantile}
	}
	if err := writeManifestEntry(cfg.Models, "expected", unfitted); err != nil {
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
		fc, err := openServedPInvoke(cfg, "for the sparse rule")
		if err != nil {
			return volumeChoice{}, err
		}
		defer fc.Close()
		return scoreVolume(ctx, fns, fc, sp, upper)
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
	if upper {
		e := &manifest.Expected{Quantile: expectedQuantile, Share: best.share, ChosenOn: fmt.Sprintf("mesp choose-volume: the sum of the hours less the sum of the levels over the sum of the served q%g's distance above the level, "+
			"over the %d rows (function and origin) of %d validation functions it applies to, the sparse rule chosen with it and the timers' aside; the set with it: %s", expectedQuantile, best.rows, len(fns), best.describe())}
		if err := writeManifestEntry(cfg.Models, "expected", e); err != nil {
			restore()
			return err
		}
	}
	if best.sparse == nil {
		fmt.Fprintln(os.Stderr, "choose-volume: no candidate brought the bands' hour bias closer to 1 within the WAPE slack: no sparse rule")
	} else {
		fmt.Fprintf(os.Stderr, "choose-volume: sparse below %g a day, last %d minutes\n", best.sparse.BelowDaily, best.sparse.Look)
	}
	fmt.Fprintf(os.Stderr, "choose-volume: expected share %.4f of q%g above the level\n", best.share, expectedQuantile)
	return nil
}

// scoreVolume backtests fc (whose manifest holds sparse rule sp and, with
// upper, the expected entry at share 0) on fns, fits the expected count's
// share on the rows it applies to and backtests the same forecasts with
// it: the server's answer with the share in the manifest, without running
// the models twice.
func scoreVolume(ctx context.Context, fns []trace.Function, fc *forecast.Forecaster, sp *manifest.Sparse, upper bool) (volumeChoice, error) {
	spread := make([][][]float64, 0, len(backtest.Origins)) // [origin][function]: nil where no share applies
	record := func(ctx context.Context, hs [][]float64) ([][]float64, []int, error) {
		outs := forecast.Counts
		if upper {
			outs |= forecast.Quantiles
		}
		res, err := fc.PredictUpTo(ctx, backtestRequests(hs), forecast.Routed, outs, expectedQuantile)
		if err != nil {
			return nil, nil, err
		}
		rows := make([][]float64, len(res))
		for i, r := range res {
			if r.Upper == nil || r.Sparse != nil || r.Timer != nil {
				continue
			}
			q, ok := forecast.QuantileAt(r.QuantileSeries(), expectedQuantile)
			if !ok {
				return nil, nil, fmt.Errorf("choose-volume: no q%g in an answer the expected share applies to", expectedQuantile)
			}
			rows[i] = make([]float64, len(q))
			for h, v := range q {
				rows[i][h] = float64(max(v-r.Level[h], 0))
			}
		}
		spread = append(spread, rows)
		out, cl := backtestAnswers(res, false)
		return out, cl, nil
	}
	first, err := backtest.Run(ctx, fns, []backtest.Forecaster{{Name: "mesp", Predict: record}}, "mesp", nil)
	if err != nil {
		return volumeChoice{}, err
	}
	c := volumeChoice{sparse: sp, res: first}
	var hours, forecasts, above float64
	for oi, t := range backtest.Origins {
		for i, f := range fns {
			if spread[oi][i] == nil {
				continue
			}
			c.rows++
			for h, v := range first.Forecasts["mesp"][i][oi] {
				forecasts += v
				hours += f.Counts[t+h]
				above += spread[oi][i][h]
			}
		}
	}
	if c.rows == 0 || above <= 0 {
		return c, nil
	}
	c.share = math.Round(min(1, max(0, (hours-forecasts)/above))*1e4) / 1e4
	call := 0
	raised := func(_ context.Context, hs [][]float64) ([][]float64, []int, error) {
		oi := call
		call++
		out, cl := make([][]float64, len(hs)), make([]int, len(hs))
		for i := range hs {
			f := first.Forecasts["mesp"][i][oi]
			out[i], cl[i] = f, first.Routes[i][oi]
			if up := spread[oi][i]; up != nil {
				out[i] = make([]float64, len(f))
				for h, v := range f {
					out[i][h] = float64(float32(v) + float32(c.share*up[h]))
				}
			}
		}
		return out, cl, nil
	}
	if c.res, err = backtest.Run(ctx, fns, []backtest.Forecaster{{Name: "mesp", Predict: raised}}, "mesp", nil); err != nil {
		return volumeChoice{}, err
	}
	return c, nil
}

// describe is the candidate's share and hour figures, in words.
func (c volumeChoice) describe() string {
	return fmt.Sprintf("expected share %.4f; %s", c.share, hourFigures(c.res))
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
