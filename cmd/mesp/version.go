package main

import (
	"context"
	"fmt"

	"github.com/spf13/pflag"

	"github.com/mesp-project/mesp/config"
	"github.com/mesp-project/mesp/onnx"
)

// version is set by the Makefile (-ldflags -X main.version=...).
var version = "dev"

func init() {
	register("version", "print MESP's version and the ONNX Runtime it loaded", runVersion)
}

func runVersion(_ context.Context, args []string) error {
	fs := pflag.NewFlagSet("version", pflag.ContinueOnError)
	cfgPath := fs.String("config", "", "YAML config file")
	fs.String("ort-library", "", "path of libonnxruntime.so (ort.library)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.Load(*cfgPath, fs, map[string]string{"ort-library": "ort.library"})
	if err != nil {
		return err
	}
	fmt.Printf("mesp %s\n", version)
	lib := cfg.ORT.ORTLibrary()
	v, err := onnx.Init(lib)
	if err != nil {
		return err
	}
	fmt.Printf("onnxruntime %s (%s)\n", v, lib)
	return nil
}
