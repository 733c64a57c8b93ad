package main

import (
	"context"
	"fmt"
	"os"
	"time"

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
	cfg, fns, err := validationCommand("choose-threshold", args)
	if err != nil {
		return err
	}
	fc, err := openServed(cfg)
	if err != nil {
		return err
	}
	defer fc.Close()
	if set, _ := fc.Catalog(); !set.PInvoke() {
		return fmt.Errorf("%s: no p_invoke models to fix a threshold for", cfg.Models)
	}
	start := time.Now()
	active, silent, err := servedMix(ctx, fc, fns, "choose-threshold", start)
	if err != nil {
		return err
	}
	c, err := provision.ChooseThreshold(active, silent, provision.ThresholdGrid, 0)
	if err != nil {
		return err
	}
	pw := manifest.Prewarm{
		Threshold: c.Threshold,
		ChosenOn: fmt.Sprintf("platform mix of %d validation functions of the training part and one silent copy of each (EVALUATION.md §2), as served: "+
			"fewest cold starts with idle instance-minutes at most keepalive10's in %.0f%% of %d bootstrap resamples of the functions",
			len(fns), 100*provision.IdleConfidence, provision.Bootstrap),
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

// servedMix is the platform mix of the validation functions fns (EVALUATION.md
// §2: each day and one silent copy of it) with the served p_invoke of every
// simulated minute.
func servedMix(ctx context.Context, fc *forecast.Forecaster, fns []trace.Function, label string, start time.Time) (provision.Inputs, provision.SilentInputs, error) {
	var active provision.Inputs
	for _, f := range fns {
		active.Days = append(active.Days, f.Counts)
	}
	var silent provision.SilentInputs
	silent.Days, silent.Hours = provision.SilentCopies(active.Days)
	var err error
	if active.MespP, err = minutelyP(ctx, fc, forecast.Routed, active.Days, label+": active", start); err != nil {
		return active, silent, err
	}
	silent.MespP, err = minutelyP(ctx, fc, forecast.Routed, silent.Days, label+": silent", start)
	return active, silent, err
}
