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
)

func init() {
	register("choose-sparse", "fix a models folder's sparse rule (small functions' expected count from p_invoke) on the validation functions' hour figures, as served", runChooseSparse)
}

// The candidates of the sparse rule: daily totals under which it answers,
// and how many recent minutes give the size of an invocation.
var (
	sparseBelowDaily = []float64{1e3, 3e3, 1e4, 3e4}
	sparseLook       = []int{120, 240, 480}
)

// sparseWAPESlack is how much the overall hour WAPE may grow over the set
// without the rule: the rule buys an unbiased hour for small functions,
// whose volume is a small share of the whole, and must not pay for it with
// the large functions' accuracy.
const sparseWAPESlack = 1.01

// runChooseSparse backtests the served forecaster on the validation
// functions without the rule and with each candidate and writes the
// candidate with the smallest summed distance of the bands' hour bias from
// 1, then the lowest hour WAPE (overall hour WAPE within sparseWAPESlack of
// the set without it) into
// the manifest's "sparse" entry; when none qualifies, the entry is
// removed.
func runChooseSparse(ctx context.Context, args []string) error {
	cfg, fns, err := validationCommand("choose-sparse", args)
	if err != nil {
		return err
	}
	var doc map[string]any
	if err := manifest.Read(filepath.Join(cfg.Models, "manifest.json"), &doc); err != nil {
		return err
	}
	original := doc["sparse"]
	restore := func() { _ = writeManifestEntry(cfg.Models, "sparse", original) }
	// score writes the candidate into the manifest, reloads the served set
	// and backtests it
	score := func(sp *manifest.Sparse) (*backtest.Result, error) {
		var entry any
		if sp != nil {
			entry = sp
		}
		if err := writeManifestEntry(cfg.Models, "sparse", entry); err != nil {
			return nil, err
		}
		fc, err := openServed(cfg)
		if err != nil {
			return nil, err
		}
		defer fc.Close()
		if set, _ := fc.Catalog(); !set.PInvoke() {
			return nil, fmt.Errorf("%s: no p_invoke models for the sparse rule", cfg.Models)
		}
		return backtest.Run(ctx, fns, []backtest.Forecaster{{Name: "mesp", Predict: served(fc, forecast.Routed, false)}}, "mesp", nil)
	}
	base, err := score(nil)
	if err != nil {
		restore()
		return err
	}
	fmt.Fprintf(os.Stderr, "choose-sparse: %d validation functions; without the rule: %s\n", len(fns), hourFigures(base))
	var best *manifest.Sparse
	bestDist, bestWAPE := sparseBiasDistance(base), base.Forecasters["mesp"].HourWAPE
	for _, below := range sparseBelowDaily {
		for _, look := range sparseLook {
			sp := &manifest.Sparse{BelowDaily: below, Look: look}
			res, err := score(sp)
			if err != nil {
				restore()
				return err
			}
			d := sparseBiasDistance(res)
			ok := res.Forecasters["mesp"].HourWAPE <= sparseWAPESlack*base.Forecasters["mesp"].HourWAPE
			fmt.Fprintf(os.Stderr, "choose-sparse: below %g a day, last %d minutes: %s; bias distance %.3f%s\n",
				below, look, hourFigures(res), d, map[bool]string{true: "", false: " (hour WAPE over the slack)"}[ok])
			wape := res.Forecasters["mesp"].HourWAPE
			if ok && (d < bestDist || d == bestDist && wape < bestWAPE) {
				best, bestDist, bestWAPE = sp, d, wape
				sp.ChosenOn = fmt.Sprintf("%d validation functions of the training part (mesp choose-sparse): of daily totals %v and looks %v, "+
					"the smallest sum over bands of daily total of |hour bias - 1| (two decimals), then the lowest hour WAPE, with the overall hour WAPE within %.0f%% of the set without the rule; "+
					"without: %s; with: %s", len(fns), sparseBelowDaily, sparseLook, 100*(sparseWAPESlack-1), hourFigures(base), hourFigures(res))
			}
		}
	}
	var entry any
	if best != nil {
		entry = best
	}
	if err := writeManifestEntry(cfg.Models, "sparse", entry); err != nil {
		return err
	}
	if best == nil {
		fmt.Fprintln(os.Stderr, "choose-sparse: no candidate brought the bands' hour bias closer to 1 within the WAPE slack: no rule")
		return nil
	}
	fmt.Fprintf(os.Stderr, "choose-sparse: below %g a day, last %d minutes\n", best.BelowDaily, best.Look)
	return nil
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
