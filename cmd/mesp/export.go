package main

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/pflag"

	"github.com/mesp-project/mesp/trace"
)

func init() {
	register("export", "write one part of an Azure-layout trace as Parquet (for peers and scripts)", runExport)
}

// runExport is the one Azure CSV loader's output for tools outside Go
// (the Python peers read Parquet instead of parsing the CSV again).
func runExport(_ context.Context, args []string) error {
	fs := pflag.NewFlagSet("export", pflag.ContinueOnError)
	data := fs.String("data", "", "Azure-layout CSV or CSV.gz")
	partName := fs.String("part", "all", "split part: all, test or train")
	out := fs.String("out", "", "Parquet file to write (columns function, counts)")
	skipBad := fs.Bool("skip-bad", false, "skip invalid rows instead of failing")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *data == "" || *out == "" {
		return fmt.Errorf("--data and --out are required")
	}
	fns, part, err := readPart(*data, *partName, *skipBad)
	if err != nil {
		return err
	}
	if err := trace.WriteParquet(*out, fns); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "export: %d functions (%s part) to %s\n", len(fns), part, *out)
	return nil
}
