package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mesp-project/mesp/internal/fixture"
	"github.com/mesp-project/mesp/manifest"
	"github.com/mesp-project/mesp/provision"
	"github.com/mesp-project/mesp/silence"
	"github.com/mesp-project/mesp/trace"
)

// TestFitSilenceCountsStoppedCopies: by default fit-silence fits the
// hazard on the platform mix's population, each fit function's day and
// one stopped copy of it; a copy's silence adds decisions at risk and no
// event, so it lowers the hazard of the gaps its silence reaches, and
// --stopped=false fits the active days alone.
func TestFitSilenceCountsStoppedCopies(t *testing.T) {
	fit := func(args ...string) manifest.Silence {
		dir := fixture.CopyModels(t)
		if err := runFitSilence(context.Background(), append([]string{"--data", fixture.Sample100, "--models", dir}, args...)); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
		if err != nil {
			t.Fatal(err)
		}
		var m struct {
			Silence manifest.Silence `json:"silence"`
		}
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		return m.Silence
	}
	mix, active := fit(), fit("--stopped=false")
	var days [][]float64
	if _, err := trace.Each(fixture.Sample100, trace.Options{}, func(f trace.Function) error {
		if trace.Train.Contains(f.ID) && !trace.IsValidation(f.ID) {
			days = append(days, f.Counts)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	copies, hours := provision.SilentCopies(days)
	// each copy up to its stop: the part it shares with its function
	var before [][]float64
	for i, c := range copies {
		before = append(before, c[:len(c)-hours[i]*60])
	}
	sum := func(h silence.Hazard) (atRisk, events int) {
		for _, b := range h.Bins {
			atRisk, events = atRisk+b.AtRisk, events+b.Events
		}
		return atRisk, events
	}
	ma, me := sum(mix.Hazard)
	aa, ae := sum(active.Hazard)
	ba, be := sum(silence.Fit(before))
	if me != ae+be {
		t.Fatalf("events: mix %d, want the active days' %d and the copies' before their stop %d: a stopped copy added an event", me, ae, be)
	}
	if ma <= aa+ba {
		t.Fatalf("decisions at risk: mix %d, active %d, copies before their stop %d: the silences added none", ma, aa, ba)
	}
	if !strings.Contains(mix.FittedOn, "stopped copy") || strings.Contains(active.FittedOn, "stopped") {
		t.Fatalf("fitted_on %q (mix) and %q (active) do not say which population", mix.FittedOn, active.FittedOn)
	}
	// the long silences are mostly the copies': their hazard falls
	lower := 0
	for k, b := range active.Hazard.Bins {
		if b.Gap >= 60 && b.P > 0 {
			if mix.Hazard.Bins[k].P >= b.P {
				t.Errorf("gap %d: hazard %v with the stopped copies, %v without", b.Gap, mix.Hazard.Bins[k].P, b.P)
			}
			lower++
		}
	}
	if lower == 0 {
		t.Fatal("no long gap with an event in the fixture's fit days: nothing compared")
	}
}
