package main

import (
	"context"
	"slices"
	"testing"

	"github.com/mesp-project/mesp/forecast"
	"github.com/mesp-project/mesp/internal/fixture"
	"github.com/mesp-project/mesp/provision"
)

// TestValidationMixIsTheServedMix: the mix choose-threshold and
// silence-frontier decide on holds each validation function's day and one
// silent copy of it (EVALUATION.md §2), and each simulated minute's
// p_invoke is what the served set answers from the minutes before it.
func TestValidationMixIsTheServedMix(t *testing.T) {
	ctx := context.Background()
	dir := fixture.CopyModels(t)
	mix, err := validationMix(ctx, "silence-frontier", []string{"--data", fixture.Sample100, "--models", dir})
	if err != nil {
		t.Fatal(err)
	}
	fns, _, err := readPart(fixture.Sample100, "validation", false)
	if err != nil {
		t.Fatal(err)
	}
	if len(fns) == 0 || len(mix.fns) != len(fns) || len(mix.active.MespP) != len(fns) || len(mix.silent.MespP) != len(fns) {
		t.Fatalf("%d validation functions; the mix has %d, with %d and %d p_invoke rows", len(fns), len(mix.fns), len(mix.active.MespP), len(mix.silent.MespP))
	}
	silent, hours := provision.SilentCopies(mix.active.Days)
	if !slices.Equal(hours, mix.silent.Hours) {
		t.Fatalf("silences %v, want %v", mix.silent.Hours, hours)
	}
	fc := servedFrom(t, dir)
	for i, f := range fns {
		if !slices.Equal(mix.active.Days[i], f.Counts) || !slices.Equal(mix.silent.Days[i], silent[i]) {
			t.Fatalf("function %d: the mix's days are not the function's and its silent copy", i)
		}
		// a minute of each half of the window, from the day and from its copy
		for _, m := range []int{provision.Start, provision.Start + 200} {
			for _, c := range []struct {
				day  []float64
				want float64
			}{{f.Counts, mix.active.MespP[i][m-provision.Start]}, {silent[i], mix.silent.MespP[i][m-provision.Start]}} {
				res, err := fc.Predict(ctx, []forecast.Request{{ID: "x", Counts: c.day[:m-1]}}, forecast.Routed, forecast.PInvoke)
				if err != nil {
					t.Fatal(err)
				}
				if got := float64(res[0].PInvoke[0]); got != c.want {
					t.Fatalf("function %d minute %d: served %v, the mix %v", i, m, got, c.want)
				}
			}
		}
	}
}
