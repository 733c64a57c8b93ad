package main

import (
	"context"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/mesp-project/mesp/forecast"
	"github.com/mesp-project/mesp/internal/fixture"
	"github.com/mesp-project/mesp/manifest"
	"github.com/mesp-project/mesp/provision"
)

// TestChooseQuantilesCalibratesWhatTheServerAnswers: choose-quantiles
// writes every level, each from one of the set's graphs, with a scale
// within bounds; the coverage it records for each level is the one
// the served set, reloaded with those levels, has on the busy validation
// functions' minutes a minute ahead, and it reaches the level (or the
// scale is at its bound).
func TestChooseQuantilesCalibratesWhatTheServerAnswers(t *testing.T) {
	ctx := context.Background()
	dir := fixture.CopyModels(t)
	before, err := manifest.ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	var fitted []float64 // the set's graphs, by the level each was fitted at
	for _, q := range before.Quantiles {
		fitted = append(fitted, q.FittedAt())
	}
	if err := runChooseQuantiles(ctx, []string{"--data", fixture.Sample100, "--models", dir}); err != nil {
		t.Fatal(err)
	}
	m, err := manifest.ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m.Expected != nil {
		t.Fatalf("expected entry %+v kept, though fitted on the levels before", m.Expected)
	}
	var levels []float64
	for _, q := range m.Quantiles {
		levels = append(levels, q.Q)
		if !slices.Contains(fitted, q.FittedAt()) || q.Scale <= 0 || q.Scale > manifest.MaxQuantileScale {
			t.Fatalf("level %v: from the graph fitted at %v, scale %v", q.Q, q.FittedAt(), q.Scale)
		}
	}
	if !slices.Equal(levels, quantileLevels) {
		t.Fatalf("levels %v, want %v", levels, quantileLevels)
	}
	fc := servedFrom(t, dir)
	fns, _, err := readPart(fixture.Sample100, "validation", false)
	if err != nil {
		t.Fatal(err)
	}
	days := make([][]float64, len(fns))
	for i, f := range fns {
		days[i] = f.Counts
	}
	_, _, qs, err := minutelyCounts(ctx, fc, forecast.Routed, days, "test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range m.Quantiles {
		// the served level among the levels scored (QuantileGrid)
		k := slices.IndexFunc(qs, func(a provision.QuantileAhead) bool { return a.Q == q.Q && !a.Interpolated })
		if k < 0 {
			t.Fatalf("level %v not among the levels scored", q.Q)
		}
		covered, n := 0, 0
		for i, d := range days {
			if !provision.Busy(d, provision.Target) {
				continue
			}
			for mi := range qs[k].Ahead[i] {
				n++
				if d[provision.Start-1+mi] <= qs[k].Ahead[i][mi][0] {
					covered++
				}
			}
		}
		if n == 0 {
			t.Fatal("no busy validation function in the fixture")
		}
		got := float64(covered) / float64(n)
		cal := q.Validation["calibration"].(map[string]any)
		if math.Abs(got-cal["coverage"].(float64)) > 1e-4 {
			t.Errorf("level %v: served coverage %v, the calibration recorded %v", q.Q, got, cal["coverage"])
		}
		if got < q.Q && q.Scale < manifest.MaxQuantileScale {
			t.Errorf("level %v covers %v at scale %v, under its level", q.Q, got, q.Scale)
		}
	}
}
