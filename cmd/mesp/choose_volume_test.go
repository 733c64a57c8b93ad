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

// TestChooseVolumeShareIsWhatTheServerAnswers: the expected count's share
// is the sum of the hours less the sum of the levels over the sum of the
// served q0.9's distance above the level, over the rows it applies to
// (the sparse rule's and the timers' aside), and the figures the chooser
// scores with it are those of the served set with the share written in
// its manifest.
func TestChooseVolumeShareIsWhatTheServerAnswers(t *testing.T) {
	ctx := context.Background()
	dir := fixture.CopyModels(t)
	sp := &manifest.Sparse{BelowDaily: 3000, Look: 240}
	fixture.EditManifest(t, dir, func(m map[string]any) {
		m["sparse"] = map[string]any{"below_daily": sp.BelowDaily, "look": sp.Look}
		m["expected"] = map[string]any{"quantile": expectedQuantile, "share": 0}
	})
	fns, _, err := readPart(fixture.Sample100, "all", false)
	if err != nil {
		t.Fatal(err)
	}
	open := func() *forecast.Forecaster { return servedFrom(t, dir) }
	c, err := scoreVolume(ctx, fns, open(), sp, true)
	if err != nil {
		t.Fatal(err)
	}
	// the ratio, by hand, row by row through the serving path
	fc := open()
	var hours, levels, above float64
	rows, sparse := 0, 0
	for _, t0 := range backtest.Origins {
		hs := make([][]float64, len(fns))
		for i, f := range fns {
			hs[i] = f.Counts[:t0]
		}
		res, err := fc.PredictUpTo(ctx, backtestRequests(hs), forecast.Routed, forecast.Counts|forecast.Quantiles, expectedQuantile)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range res {
			if r.Sparse != nil {
				sparse++
			}
			if r.Upper == nil || r.Sparse != nil || r.Timer != nil {
				continue
			}
			rows++
			q, _ := forecast.QuantileAt(r.QuantileSeries(), expectedQuantile)
			for h, v := range r.Level {
				levels += float64(v)
				hours += fns[i].Counts[t0+h]
				above += float64(max(q[h]-v, 0))
			}
		}
	}
	if rows == 0 || sparse == 0 || rows != c.rows {
		t.Fatalf("%d rows with the share (chooser %d), %d sparse: nothing to compare", rows, c.rows, sparse)
	}
	if want := math.Round(min(1, max(0, (hours-levels)/above))*1e4) / 1e4; c.share != want || c.share == 0 {
		t.Fatalf("share %v, want %v (hours %v, levels %v, above %v)", c.share, want, hours, levels, above)
	}
	// the served set with the share in its manifest scores the same
	fixture.EditManifest(t, dir, func(m map[string]any) { m["expected"].(map[string]any)["share"] = c.share })
	raised := open()
	res, err := backtest.Run(ctx, fns, []backtest.Forecaster{{Name: "mesp", Predict: served(raised, forecast.Routed, false)}}, "mesp", nil)
	if err != nil {
		t.Fatal(err)
	}
	got, want := res.Forecasters["mesp"], c.res.Forecasters["mesp"]
	if math.Abs(got.HourBias-want.HourBias) > 1e-9 || math.Abs(got.HourWAPE-want.HourWAPE) > 1e-9 || math.Abs(got.WAPE-want.WAPE) > 1e-9 {
		t.Fatalf("served with share %v: hour bias %v, hour WAPE %v, WAPE %v; the chooser scored %v, %v, %v",
			c.share, got.HourBias, got.HourWAPE, got.WAPE, want.HourBias, want.HourWAPE, want.WAPE)
	}
	r, err := raised.Forecast(ctx, backtestRequests([][]float64{fns[0].Counts[:1200]}), forecast.Routed)
	if err != nil {
		t.Fatal(err)
	}
	if u := r[0].Upper; u != nil && u.Share != c.share {
		t.Fatalf("the answer's upper %+v, want share %v", u, c.share)
	}
}

// TestChooseVolumeRefitsFromShareZero: the command writes a sparse rule
// and the expected count's share, the folder stays a valid set, and a
// second run fits the same share (it scores the set at share 0, not on top
// of the share it wrote).
func TestChooseVolumeRefitsFromShareZero(t *testing.T) {
	dir := fixture.CopyModels(t)
	fixture.EditManifest(t, dir, func(m map[string]any) { delete(m, "expected") })
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
	if first.Expected == nil || first.Expected.Share == 0 || first.Expected.Quantile != expectedQuantile || first.Expected.ChosenOn == "" {
		t.Fatalf("expected entry %+v: no share written", first.Expected)
	}
	if err := runChooseVolume(context.Background(), args); err != nil {
		t.Fatal(err)
	}
	second := read()
	if second.Expected.Share != first.Expected.Share || (first.Sparse == nil) != (second.Sparse == nil) ||
		first.Sparse != nil && (first.Sparse.BelowDaily != second.Sparse.BelowDaily || first.Sparse.Look != second.Sparse.Look) {
		t.Fatalf("second run: share %v, sparse %+v; first: %v, %+v", second.Expected.Share, second.Sparse, first.Expected.Share, first.Sparse)
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
