package main

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/pflag"

	"github.com/mesp-project/mesp/config"
	"github.com/mesp-project/mesp/manifest"
	"github.com/mesp-project/mesp/trace"
)

// validationCommand parses the flags of a command that fixes a manifest
// entry on the served set's answers for the training data's validation
// functions (--data, --models, --ort-library) and reads those functions.
func validationCommand(name string, args []string) (config.Config, []trace.Function, error) {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	data := fs.String("data", "", "Azure-layout CSV or CSV.gz of the training data (its validation functions are read)")
	fs.String("models", "", "models or work folder whose manifest.json gets the entry (models)")
	cfg, err := loadWithData(fs, args, data)
	if err != nil {
		return cfg, nil, err
	}
	fns, _, err := readPart(*data, "validation", false)
	return cfg, fns, err
}

// loadWithData adds --ort-library to fs, parses args, requires the --data
// flag data points at, and loads the configuration (models and the ONNX
// Runtime library from flags over the file and environment): the set-up
// of the commands that serve a models folder over a data file.
func loadWithData(fs *pflag.FlagSet, args []string, data *string) (config.Config, error) {
	fs.String("ort-library", "", "libonnxruntime.so path (ort.library)")
	if err := fs.Parse(args); err != nil {
		return config.Config{}, err
	}
	if *data == "" {
		return config.Config{}, fmt.Errorf("--data is required")
	}
	return config.Load("", fs, map[string]string{"ort-library": "ort.library"})
}

// writeManifestEntry sets key in models' manifest.json to value (nil
// removes it), keeping every other key of the file as it is, and checks
// that the folder still reads as a set.
func writeManifestEntry(models, key string, value any) error {
	path := filepath.Join(models, "manifest.json")
	var doc map[string]any
	if err := manifest.Read(path, &doc); err != nil {
		return err
	}
	if value == nil {
		delete(doc, key)
	} else {
		doc[key] = value
	}
	if err := manifest.Write(path, doc); err != nil {
		return err
	}
	if _, err := manifest.ReadManifest(models); err != nil {
		return fmt.Errorf("%s with %s: %w", path, key, err)
	}
	return nil
}
