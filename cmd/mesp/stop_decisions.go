package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/spf13/pflag"

	"github.com/mesp-project/mesp/forecast"
	"github.com/mesp-project/mesp/periodic"
	"github.com/mesp-project/mesp/provision"
	"github.com/mesp-project/mesp/silence"
	"github.com/mesp-project/mesp/trace"
)

func init() {
	register("stop-decisions", "write the stop model's training decisions: the training part's validation functions and a stopped copy of each, every minute of the simulated window with the served p_invoke, as Parquet", runStopDecisions)
}

// runStopDecisions writes silence.StopDecision rows for the platform mix
// (EVALUATION.md §2) of the training part's validation functions (or its
// fit functions), with the set's p_invoke served without its stop model:
// what `python -m mesp_training train-stop` fits on.
func runStopDecisions(ctx context.Context, args []string) error {
	fs := pflag.NewFlagSet("stop-decisions", pflag.ContinueOnError)
	data := fs.String("data", "", "Azure-layout CSV or CSV.gz of the training data")
	out := fs.String("out", "out/stop-decisions.parquet", "Parquet file to write")
	which := fs.String("functions", "validation", "which functions of the training part: validation (unseen by the p_invoke models, whose answers on their own fit functions are better than on any other) or fit")
	fs.String("models", "", "models folder whose served p_invoke the decisions hold (models)")
	cfg, err := loadWithData(fs, args, data)
	if err != nil {
		return err
	}
	if *which != "validation" && *which != "fit" {
		return fmt.Errorf("--functions %q: want validation or fit", *which)
	}
	var days [][]float64
	if _, err := trace.Each(*data, trace.Options{}, func(f trace.Function) error {
		if trace.Train.Contains(f.ID) && trace.IsValidation(f.ID) == (*which == "validation") {
			days = append(days, f.Counts)
		}
		return nil
	}); err != nil {
		return err
	}
	if len(days) == 0 {
		return fmt.Errorf("%s: no %s functions in the training part", *data, *which)
	}
	fc := servedForecaster(cfg, nil)
	fc.SkipStop = true
	if err := openForecaster(cfg, fc); err != nil {
		return err
	}
	defer fc.Close()
	// the timers' expert answers its own minutes, as the forecaster marks
	// them (forecast.Set.markTimers): the stop model does not
	timer := func(h []float64) bool {
		_, ok := periodic.Detect(h)
		return ok && !fc.SkipTimers
	}
	start := time.Now()
	copies, hours := provision.SilentCopies(days)
	var rows []silence.StopDecision
	for _, set := range []struct {
		days  [][]float64
		hours []int
		label string
	}{{days, make([]int, len(days)), "stop-decisions: active"}, {copies, hours, "stop-decisions: stopped"}} {
		p, err := minutelyP(ctx, fc, forecast.Routed, set.days, set.label, start)
		if err != nil {
			return err
		}
		for i, d := range set.days {
			rows = append(rows, silence.StopDecisions(i, set.hours[i], d, p[i], provision.Start, timer)...)
		}
	}
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		return err
	}
	if err := parquet.WriteFile(*out+".tmp", rows); err != nil {
		return fmt.Errorf("stop-decisions: %w", err)
	}
	if err := os.Rename(*out+".tmp", *out); err != nil {
		return err
	}
	fmt.Printf("stop-decisions: %d decisions of %d %s functions and their stopped copies -> %s (%s)\n", len(rows), len(days), *which, *out, time.Since(start).Round(time.Second))
	return nil
}
