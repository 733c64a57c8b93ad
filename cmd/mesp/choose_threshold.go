package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/mesp-project/mesp/config"
	"github.com/mesp-project/mesp/forecast"
	"github.com/mesp-project/mesp/manifest"
	"github.com/mesp-project/mesp/provision"
	"github.com/mesp-project/mesp/trace"
)

func init() {
	register("choose-threshold", "fix a models folder's default pre-warm threshold on the validation functions' platform mix, as served", runChooseThreshold)
}

// runChooseThreshold runs the served p_invoke (silence cap included) over
// the validation functions and their silent copies and writes the
// threshold provision.ChooseThreshold picks into the manifest's "prewarm"
// entry, keeping every other key of the file as it is.
func runChooseThreshold(ctx context.Context, args []string) error {
	mix, err := validationMix(ctx, "choose-threshold", args)
	if err != nil {
		return err
	}
	cfg, fns, start := mix.cfg, mix.fns, mix.start
	c, err := provision.ChooseThreshold(mix.active, mix.silent, provision.ThresholdGrid, provision.MaxSilentShare, 0)
	if err != nil {
		return err
	}
	pw := manifest.Prewarm{
		Threshold: c.Threshold,
		ChosenOn: fmt.Sprintf("platform mix of %d validation functions of the training part and one silent copy of each (EVALUATION.md §2), as served: "+
			"fewest cold starts with idle instance-minutes at most keepalive10's in %.0f%% of %d bootstrap resamples of the functions "+
			"and the silent copies warm at most %.0f%% of their minutes",
			len(fns), 100*provision.IdleConfidence, provision.Bootstrap, 100*provision.MaxSilentShare),
		ValColdStarts: c.ColdStarts, ValIdleMinutes: c.IdleMinutes, ValInvokedMinutes: c.InvokedMinutes,
		ValKeepalive10ColdStarts: c.ReferenceColdStarts, ValKeepalive10Idle: c.ReferenceIdleMinutes,
		ValIdleRatioUpper:  c.IdleRatioUpper,
		ValSilentWarmShare: float64(c.SilentIdleMinutes) / float64(c.SilentMinutes),
	}
	if err := writeManifestEntry(cfg.Models, "prewarm", pw); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "choose-threshold: %v (mix: %d cold starts, %d idle minutes vs keepalive10 %d, %d; idle ratio %.4f at %.0f%% confidence; silent copies warm %.2f%% of their minutes) in %s\n",
		c.Threshold, c.ColdStarts, c.IdleMinutes, c.ReferenceColdStarts, c.ReferenceIdleMinutes, c.IdleRatioUpper,
		100*provision.IdleConfidence, 100*pw.ValSilentWarmShare, time.Since(start).Round(time.Second))
	return nil
}

// servedMix is the platform mix of a validation command's functions
// (EVALUATION.md §2: each day and one silent copy of it) with the served
// p_invoke of every simulated minute.
type servedMix struct {
	cfg    config.Config
	fns    []trace.Function
	active provision.Inputs
	silent provision.SilentInputs
	start  time.Time
}

// validationMix reads the command's flags (validationCommand), serves its
// models and runs their p_invoke over the validation functions' platform
// mix.
func validationMix(ctx context.Context, name string, args []string) (servedMix, error) {
	cfg, fns, err := validationCommand(name, args)
	if err != nil {
		return servedMix{}, err
	}
	fc, err := openServedPInvoke(cfg, "to decide with")
	if err != nil {
		return servedMix{}, err
	}
	defer fc.Close()
	mix := servedMix{cfg: cfg, fns: fns, start: time.Now()}
	for _, f := range fns {
		mix.active.Days = append(mix.active.Days, f.Counts)
	}
	mix.silent.Days, mix.silent.Hours = provision.SilentCopies(mix.active.Days)
	if mix.active.MespP, err = minutelyP(ctx, fc, forecast.Routed, mix.active.Days, name+": active", mix.start); err != nil {
		return mix, err
	}
	mix.silent.MespP, err = minutelyP(ctx, fc, forecast.Routed, mix.silent.Days, name+": silent", mix.start)
	return mix, err
}
