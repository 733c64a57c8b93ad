package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/pflag"

	"github.com/mesp-project/mesp/manifest"
	"github.com/mesp-project/mesp/router"
	"github.com/mesp-project/mesp/trace"
)

// runClusterCalibrate recomputes the partial-window radii of a models or
// work folder's clusters.json from the training part, and re-pins it in
// the folder's manifest.json (centroids and members stay as they are, so
// the experts still match).
func runClusterCalibrate(ctx context.Context, args []string) error {
	fs := pflag.NewFlagSet("cluster calibrate", pflag.ContinueOnError)
	data := fs.String("data", "", "Azure-layout CSV or CSV.gz the clusters were fitted on")
	models := fs.String("models", "", "folder with clusters.json (a work folder; publish it with mesp publish)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *data == "" || *models == "" {
		return fmt.Errorf("--data and --models are required")
	}
	path := filepath.Join(*models, "clusters.json")
	cs, err := manifest.ReadClusters(path)
	if err != nil {
		return err
	}
	set := calibrationSet{length: cs.Length}
	if _, err := trace.Each(*data, trace.Options{}, func(f trace.Function) error { set.add(f); return nil }); err != nil {
		return err
	}
	if err := set.calibrate(ctx, &cs, *data); err != nil {
		return err
	}
	if err := manifest.Write(path, cs); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(*models, "manifest.json")); err == nil {
		return manifest.PinClusters(*models)
	}
	return nil
}

// calibrationDays caps the functions calibration routes: 99% radii need a
// few thousand windows per cluster, not every row of a large trace.
const calibrationDays = 20000

// calibrationSet gathers the days partial-window radii are calibrated on:
// the training part's non-validation functions (so that validation
// functions can check the OOD rate), at most calibrationDays of them.
type calibrationSet struct {
	length int
	ids    []string
	days   [][]float64
}

func (c *calibrationSet) add(f trace.Function) {
	if trace.IsTest(f.ID) || trace.IsValidation(f.ID) || len(c.days) >= calibrationDays || len(f.Counts) != c.length {
		return
	}
	c.ids, c.days = append(c.ids, f.ID), append(c.days, append([]float64(nil), f.Counts...))
}

// calibrate sets every cluster's partial-window radii from the days
// gathered from data.
func (c *calibrationSet) calibrate(ctx context.Context, cs *manifest.Clusters, data string) error {
	if len(c.days) == 0 {
		return fmt.Errorf("calibrate: %s has no training functions of %d minutes", data, cs.Length)
	}
	return setRadii(ctx, cs, c.ids, c.days, nil)
}

// setRadii calibrates on the given days and stores the radii of the
// clusters in only (all when nil).
func setRadii(ctx context.Context, cs *manifest.Clusters, ids []string, days [][]float64, only map[int]bool) error {
	rt, err := router.New(*cs)
	if err != nil {
		return err
	}
	lengths := router.CalibrationLengths(cs.Length)
	radii, err := rt.Calibrate(ctx, ids, days, lengths, 0.99, func(done, total int) {
		fmt.Fprintf(os.Stderr, "\rcalibrate: %d functions, window length %d of %d   ", len(days), done, total)
	})
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return err
	}
	for j := range cs.Clusters {
		if only == nil || only[cs.Clusters[j].ID] {
			cs.Clusters[j].PartialThresholds = radii[j]
		}
	}
	return nil
}
