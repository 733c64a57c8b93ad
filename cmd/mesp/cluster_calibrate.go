package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/pflag"

	"github.com/mesp-project/mesp/clusterset"
	"github.com/mesp-project/mesp/manifest"
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
	set := clusterset.Calibration{Length: cs.Length}
	if _, err := trace.Each(*data, trace.Options{}, func(f trace.Function) error { set.Add(f); return nil }); err != nil {
		return err
	}
	if err := set.Calibrate(ctx, &cs, *data); err != nil {
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
