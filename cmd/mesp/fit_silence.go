package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/spf13/pflag"

	"github.com/mesp-project/mesp/manifest"
	"github.com/mesp-project/mesp/provision"
	"github.com/mesp-project/mesp/silence"
	"github.com/mesp-project/mesp/trace"
)

func init() {
	register("fit-silence", "fit the hazard of silences longer than a pattern shows on the training part's fit functions; write it into a models folder's manifest", runFitSilence)
}

// runFitSilence fits silence.Hazard on the training part's fit functions
// (validation functions stay unseen) and sets the manifest's "silence"
// entry, keeping every other key of the file as it is.
func runFitSilence(_ context.Context, args []string) error {
	fs := pflag.NewFlagSet("fit-silence", pflag.ContinueOnError)
	data := fs.String("data", "", "Azure-layout CSV or CSV.gz of the training data")
	models := fs.String("models", "", "models or work folder whose manifest.json gets the hazard")
	minGap := fs.Int("min-gap", 10, "idle minutes from which the mean trees and the sparse rule leave an unprecedented silence to the level (the minutes from which p_invoke is capped: a busy function silent for half an hour was forecast most of its rate while its p_invoke was the hazard's)")
	capFrom := fs.Int("cap-from", 10, "idle minutes from which the hazard caps p_invoke (below, the models know a function's own gaps better)")
	stopped := fs.Bool("stopped", true, "fit on the platform EVALUATION.md §2's mix describes: each fit function's day and one stopped copy of it (its last 6, 12 or 24 hours silent); false: the active days alone, every one invoked that day")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *data == "" || *models == "" {
		return fmt.Errorf("--data and --models are required")
	}
	var days, val [][]float64
	if _, err := trace.Each(*data, trace.Options{}, func(f trace.Function) error {
		if trace.Train.Contains(f.ID) {
			if trace.IsValidation(f.ID) {
				val = append(val, f.Counts)
			} else {
				days = append(days, f.Counts)
			}
		}
		return nil
	}); err != nil {
		return err
	}
	if len(days) == 0 {
		return fmt.Errorf("%s: no training functions", *data)
	}
	fitted := fmt.Sprintf("%s: %d fit functions of the training part", filepath.Base(*data), len(days))
	fit, check := days, val
	if *stopped {
		withStopped := func(d [][]float64) [][]float64 {
			copies, _ := provision.SilentCopies(d)
			return append(slices.Clip(d), copies...)
		}
		fit, check = withStopped(days), withStopped(val)
		fitted += " and one stopped copy of each (its last 6, 12 or 24 hours silent, cycling: EVALUATION.md §2's platform mix)"
	}
	sl := manifest.Silence{Hazard: silence.Fit(fit), MinGap: *minGap, CapFrom: *capFrom, FittedOn: fitted}
	if err := sl.Validate(); err != nil {
		return err
	}
	if err := writeManifestEntry(*models, "silence", sl); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "fit-silence: %d days; hazard after an unprecedented gap: %d min %.4f (%.4f at 10x the longest before), %d min %.4f, %d min %.5f; caps p_invoke from %d idle minutes\n",
		len(days), 30, sl.At(30), sl.AtPast(30, 1), 240, sl.At(240), 1440, sl.At(1440), sl.CapsFrom())
	printSilenceCheck(os.Stderr, sl.Hazard, silence.Fit(check), len(val))
	return nil
}

// printSilenceCheck prints, for the gaps the cap acts on, the fitted
// hazard beside the rate the validation functions (and their stopped
// copies, where the fit has them) show: whether a long silence's
// probability follows what data the fit never read support.
func printSilenceCheck(w io.Writer, fitted, observed silence.Hazard, functions int) {
	fmt.Fprintf(w, "fit-silence: on %d validation functions, idle gap (minutes): fitted hazard / observed events over decisions at risk\n", functions)
	row := func(label string, fb, ob []silence.Bin) {
		fmt.Fprintf(w, "  %-24s", label)
		for k, b := range fb {
			if b.Gap >= 10 && b.Gap <= 360 {
				fmt.Fprintf(w, " %d: %.4f / %d/%d", b.Gap, b.P, ob[k].Events, ob[k].AtRisk)
			}
		}
		fmt.Fprintln(w)
	}
	row("every gap", fitted.Bins, observed.Bins)
	for c, p := range fitted.Past {
		if c >= len(observed.Past) {
			break
		}
		label := fmt.Sprintf("%gx the longest and more", p.Ratio)
		switch {
		case c == 0 && len(fitted.Past) > 1:
			label = fmt.Sprintf("under %gx the longest", fitted.Past[1].Ratio)
		case c+1 < len(fitted.Past):
			label = fmt.Sprintf("%g-%gx the longest", p.Ratio, fitted.Past[c+1].Ratio)
		}
		row(label, p.Bins, observed.Past[c].Bins)
	}
}
