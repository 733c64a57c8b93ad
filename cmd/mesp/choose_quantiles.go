package main

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/mesp-project/mesp/forecast"
	"github.com/mesp-project/mesp/manifest"
	"github.com/mesp-project/mesp/provision"
)

func init() {
	register("choose-quantiles", "calibrate a models folder's served quantile levels on the validation functions: each level's scale on its quantile trees, so that it covers that share of the busy functions' minutes a minute ahead, as served", runChooseQuantiles)
}

// quantileLevels are the levels a set serves after calibration: KEDA's
// default 0.9 and a range around it, every hundredth from 0.9 up, so that
// a trigger's level is calibrated, not interpolated between two (each
// level costs no model run of its own: it scales a graph's answer; the
// interpolated levels had covered 0.918 at q0.91 and 0.980 at q0.96 on
// validation). None lower than 0.8: the median alone covers about three
// quarters of the busy functions' minutes on validation.
var quantileLevels = []float64{0.8, 0.85, 0.9, 0.91, 0.92, 0.93, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99}

// Bounds of a level's scale: below the lowest the level would be the
// median's; a level that needs more than manifest.MaxQuantileScale is
// served at it, and its shortfall reported.
const minQuantileScale = 0.05

// runChooseQuantiles serves each quantile graph of the manifest alone (its
// fitted level, scale 1) over the validation functions' minutes
// 1081..1440, each forecast a minute ahead as the replica simulation makes
// it (EVALUATION.md section 4), and for each of quantileLevels chooses,
// for each graph, the smallest scale at which the level (floored at the
// level below, the median first) covers that share of the minutes of the
// functions that ever need two replicas (provision.CalibrateScale):
// conformal calibration of the quantile trees on functions their fit never
// read. Of the graphs it keeps the sharpest at that coverage
// (provision.SharpestScale). It writes the levels into the manifest's
// "quantiles".
func runChooseQuantiles(ctx context.Context, args []string) error {
	cfg, fns, err := validationCommand("choose-quantiles", args)
	if err != nil {
		return err
	}
	m, err := manifest.ReadManifest(cfg.Models)
	if err != nil {
		return err
	}
	// the graphs, each once, at the level it was fitted at
	var graphs []manifest.Quantile
	for _, q := range m.Quantiles {
		if !slices.ContainsFunc(graphs, func(g manifest.Quantile) bool { return g.File == q.File }) {
			g := q
			g.Q, g.Fitted, g.Scale = q.FittedAt(), 0, 0
			graphs = append(graphs, g)
		}
	}
	slices.SortFunc(graphs, func(a, b manifest.Quantile) int { return cmp.Compare(a.Q, b.Q) })
	if len(graphs) == 0 {
		return fmt.Errorf("choose-quantiles: %s serves no quantile trees (python -m mesp_training train-trees --quantiles)", cfg.Models)
	}
	var doc map[string]any
	if err := manifest.Read(filepath.Join(cfg.Models, "manifest.json"), &doc); err != nil {
		return err
	}
	// on failure the manifest gets its levels (and its expected entry) back
	restore := func(err error) error {
		_ = writeManifestEntry(cfg.Models, "quantiles", doc["quantiles"])
		_ = writeManifestEntry(cfg.Models, "expected", doc["expected"])
		return err
	}
	// The expected count's share was fitted on the levels as they were
	// calibrated before (manifest.Expected): it goes, and `mesp
	// choose-volume` fits it again on the new ones.
	if err := writeManifestEntry(cfg.Models, "expected", nil); err != nil {
		return err
	}
	days := make([][]float64, len(fns))
	busy := make([]bool, len(fns))
	for i, f := range fns {
		days[i], busy[i] = f.Counts, provision.Busy(f.Counts, provision.Target)
	}
	start := time.Now()
	// per graph, the busy functions' minutes a minute ahead: the count, the
	// median and the graph's answer floored at the median (as served)
	var y, median []float64
	base := make([][]float64, len(graphs))
	for k, g := range graphs {
		if err := writeManifestEntry(cfg.Models, "quantiles", []manifest.Quantile{g}); err != nil {
			return restore(err)
		}
		fc, err := openServed(cfg)
		if err != nil {
			return restore(err)
		}
		med, _, qs, err := minutelyCounts(ctx, fc, forecast.Routed, days, fmt.Sprintf("choose-quantiles: q%g", g.Q), start)
		fc.Close()
		if err != nil {
			return restore(err)
		}
		for i := range days {
			if !busy[i] {
				continue
			}
			for mi := range med[i] {
				if k == 0 {
					y = append(y, days[i][provision.Start-1+mi])
					median = append(median, med[i][mi])
				}
				base[k] = append(base[k], qs[0].Ahead[i][mi][0])
			}
		}
	}
	var levels []manifest.Quantile
	lower := median
	for _, q := range quantileLevels {
		k, c := provision.SharpestScale(y, lower, base, q, minQuantileScale, manifest.MaxQuantileScale)
		c = math.Ceil(c*1e4) / 1e4 // four decimals, never under the factor found
		// the level as the server answers it (float32), and what it covers
		next := make([]float64, len(y))
		covered := 0
		for m := range y {
			next[m] = max(lower[m], float64(float32(c)*float32(base[k][m])))
			if y[m] <= next[m] {
				covered++
			}
		}
		cov := float64(covered) / float64(max(1, len(y)))
		l := graphs[k]
		l.Q, l.Fitted, l.Scale = q, graphs[k].Q, c
		l.Validation = maps.Clone(graphs[k].Validation)
		if l.Validation == nil {
			l.Validation = map[string]any{}
		}
		l.Validation["calibration"] = map[string]any{
			"coverage": math.Round(cov*1e4) / 1e4, "functions": countTrue(busy), "minutes": len(y),
			"chosen_on": fmt.Sprintf("the %d of %d validation functions of the training part that ever need two replicas of %d invocations a minute, minutes %d..%d each forecast a minute ahead as served (mesp choose-quantiles): the smallest scale at which the level, floored at the level below, covers %g of them, from the graph whose level then sums least", countTrue(busy), len(fns), provision.Target, provision.Start, provision.End, q),
		}
		fmt.Fprintf(os.Stderr, "choose-quantiles: q%g from the graph fitted at %g: scale %.4f covers %.4f of %d minutes\n", q, graphs[k].Q, c, cov, len(y))
		lower = next
		levels = append(levels, l)
	}
	if err := writeManifestEntry(cfg.Models, "quantiles", levels); err != nil {
		return restore(err)
	}
	fmt.Fprintf(os.Stderr, "choose-quantiles: %s serves %d levels from %d graphs (%s)\n", cfg.Models, len(levels), len(graphs), time.Since(start).Round(time.Second))
	if doc["expected"] != nil {
		fmt.Fprintln(os.Stderr, "choose-quantiles: the expected count's share was fitted on the old levels and is removed: run mesp choose-volume")
	}
	return nil
}

func countTrue(b []bool) int {
	n := 0
	for _, v := range b {
		if v {
			n++
		}
	}
	return n
}
