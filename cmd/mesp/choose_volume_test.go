package main

import (
	"context"
	"math"
	"testing"

	"github.com/mesp-project/mesp/backtest"
	"github.com/mesp-project/mesp/config"
	"github.com/mesp-project/mesp/forecast"
	"github.com/mesp-project/mesp/internal/fixture"
	"github.com/mesp-project/mesp/manifest"
)

// TestChooseVolumeScaleIsWhatTheServerAnswers: the mean trees' scale is
// the sum of the hours over the sum of the forecasts of the rows they
// answer (the sparse rule's and the timers' aside), and the figures the
// chooser scores with it are those of the served set with the scale
// written in its manifest.
func TestChooseVolumeScaleIsWhatTheServerAnswers(t *testing.T) {
	ctx := context.Background()
	dir := fixture.CopyModels(t)
	sp := &manifest.Sparse{BelowDaily: 3000, Look: 240}
	fixture.EditManifest(t, dir, func(m map[string]any) {
		m["sparse"] = map[string]any{"below_daily": sp.BelowDaily, "look": sp.Look}
		delete(m["mean"].(map[string]any), "scale")
	})
	fns, _, err := readPart(fixture.Sample100, "all", false)
	if err != nil {
		t.Fatal(err)
	}
	open := func() *forecast.Forecaster { return servedFrom(t, dir) }
	c, err := scoreVolume(ctx, fns, open(), sp)
	if err != nil {
		t.Fatal(err)
	}
	// the ratio, by hand, row by row through the serving path
	fc := open()
	var hours, forecasts float64
	rows, sparse := 0, 0
	for _, t0 := range backtest.Origins {
		hs := make([][]float64, len(fns))
		for i, f := range fns {
			hs[i] = f.Counts[:t0]
		}
		res, err := fc.Forecast(ctx, backtestRequests(hs), forecast.Routed)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range res {
			if r.Sparse != nil {
				sparse++
			}
			if r.Mean == nil || r.Sparse != nil || r.Timer != nil {
				continue
			}
			rows++
			for h, v := range r.Forecast {
				forecasts += float64(v)
				hours += fns[i].Counts[t0+h]
			}
		}
	}
	if rows == 0 || sparse == 0 || rows != c.rows {
		t.Fatalf("%d mean rows (chooser %d), %d sparse: nothing to compare", rows, c.rows, sparse)
	}
	if want := math.Round(hours/forecasts*1e4) / 1e4; c.scale != want || c.scale == 1 {
		t.Fatalf("scale %v, want %v (hours %v over forecasts %v)", c.scale, want, hours, forecasts)
	}
	// the served set with the scale in its manifest scores the same
	fixture.EditManifest(t, dir, func(m map[string]any) { m["mean"].(map[string]any)["scale"] = c.scale })
	scaled := open()
	res, err := backtest.Run(ctx, fns, []backtest.Forecaster{{Name: "mesp", Predict: served(scaled, forecast.Routed, false)}}, "mesp", nil)
	if err != nil {
		t.Fatal(err)
	}
	got, want := res.Forecasters["mesp"], c.res.Forecasters["mesp"]
	if math.Abs(got.HourBias-want.HourBias) > 1e-9 || math.Abs(got.HourWAPE-want.HourWAPE) > 1e-9 || math.Abs(got.WAPE-want.WAPE) > 1e-9 {
		t.Fatalf("served with scale %v: hour bias %v, hour WAPE %v, WAPE %v; the chooser scored %v, %v, %v",
			c.scale, got.HourBias, got.HourWAPE, got.WAPE, want.HourBias, want.HourWAPE, want.WAPE)
	}
	r, err := scaled.Forecast(ctx, backtestRequests([][]float64{fns[0].Counts[:1200]}), forecast.Routed)
	if err != nil {
		t.Fatal(err)
	}
	if m := r[0].Mean; m != nil && m.Scale != c.scale {
		t.Fatalf("the answer's mean %+v, want scale %v", m, c.scale)
	}
}

// TestChooseVolumeRefitsFromTheUnscaledSet: the command writes a sparse
// rule and the mean trees' scale, the folder stays a valid set, and a
// second run fits the same scale (it scores the set without the scale it
// wrote, not on top of it).
func TestChooseVolumeRefitsFromTheUnscaledSet(t *testing.T) {
	dir := fixture.CopyModels(t)
	args := []string{"--data", fixture.Sample100, "--models", dir}
	read := func() manifest.Manifest {
		m, err := manifest.ReadManifest(dir)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	if err := runChooseVolume(context.Background(), args); err != nil {
		t.Fatal(err)
	}
	first := read()
	if first.Mean == nil || first.Mean.Scale == 0 || first.Mean.Validation["scale_fitted_on"] == nil {
		t.Fatalf("mean entry %+v: no scale written", first.Mean)
	}
	if err := runChooseVolume(context.Background(), args); err != nil {
		t.Fatal(err)
	}
	second := read()
	if second.Mean.Scale != first.Mean.Scale || (first.Sparse == nil) != (second.Sparse == nil) ||
		first.Sparse != nil && (first.Sparse.BelowDaily != second.Sparse.BelowDaily || first.Sparse.Look != second.Sparse.Look) {
		t.Fatalf("second run: scale %v, sparse %+v; first: %v, %+v", second.Mean.Scale, second.Sparse, first.Mean.Scale, first.Sparse)
	}
}

// servedFrom is the served set of a models folder, as the choose-*
// commands and eval open it, closed at the test's end.
func servedFrom(t *testing.T, dir string) *forecast.Forecaster {
	t.Helper()
	cfg, err := config.Load("", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Models = dir
	fc, err := openServed(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fc.Close)
	return fc
}
