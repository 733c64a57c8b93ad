package main

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/pflag"

	"github.com/mesp-project/mesp/config"
	"github.com/mesp-project/mesp/forecast"
	"github.com/mesp-project/mesp/onnx"
	"github.com/mesp-project/mesp/publish"
)

func init() {
	register("publish", "verify a trained model set and put it in place of the served one in one step", runPublish)
}

func runPublish(_ context.Context, args []string) error {
	fs := pflag.NewFlagSet("publish", pflag.ContinueOnError)
	cfgPath := fs.String("config", "", "YAML config file")
	from := fs.String("from", "", "work folder with the complete new set (clusters, Parquet, manifest, ONNX files)")
	fs.String("models", "", "the served models folder to replace (models)")
	fs.String("ort-library", "", "libonnxruntime.so path (ort.library)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *from == "" {
		return fmt.Errorf("--from is required")
	}
	cfg, err := config.Load(*cfgPath, fs, map[string]string{"ort-library": "ort.library"})
	if err != nil {
		return err
	}
	if _, err := onnx.Init(cfg.ORT.ORTLibrary()); err != nil {
		return err
	}
	// The same verification as the server's load: a set that would be
	// refused in service is refused here, and the served one stays.
	set, err := forecast.LoadSet(*from, onnx.Options{IntraOpThreads: 1}, forecast.Batching{})
	if err != nil {
		return fmt.Errorf("%s is not a loadable model set, nothing published: %w", *from, err)
	}
	set.Close()
	stage, err := publish.Stage(cfg.Models)
	if err != nil {
		return err
	}
	if err := publish.CopyFiles(*from, stage); err != nil {
		publish.Abort(stage)
		return err
	}
	if err := publish.Commit(stage, cfg.Models); err != nil {
		publish.Abort(stage)
		return err
	}
	fmt.Fprintf(os.Stderr, "publish: %s now serves the set from %s\n", cfg.Models, *from)
	return nil
}
