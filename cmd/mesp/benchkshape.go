package main

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"time"

	"github.com/spf13/pflag"

	"github.com/mesp-project/mesp/kshape"
	"github.com/mesp-project/mesp/procstat"
	"github.com/mesp-project/mesp/trace"
)

func init() {
	register("bench-kshape", "time K-Shape at n rows made from real ones (random shifts and noise); report time per iteration and peak memory", runBenchKShape)
}

func runBenchKShape(ctx context.Context, args []string) error {
	fs := pflag.NewFlagSet("bench-kshape", pflag.ContinueOnError)
	data := fs.String("data", "", "Azure-layout CSV(.gz) of real rows")
	n := fs.Int("n", 50000, "rows to cluster; beyond the file's rows, augmented copies")
	k := fs.Int("k", 8, "clusters")
	iters := fs.Int("max-iter", 5, "iterations")
	write := fs.String("write", "", "write the n rows to this Azure-layout CSV.gz instead of clustering them (for mesp cluster streaming from a file)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	real, err := trace.ReadAll(*data, trace.Options{}, trace.All)
	if err != nil {
		return err
	}
	// Rows beyond the real ones: a real row shifted by up to +-120 minutes
	// with 10% multiplicative noise per minute (trace.Augment), seed 1.
	rng := rand.New(rand.NewPCG(1, 1))
	rows := func(yield func(trace.Function) error) error {
		for i := range *n {
			f := real[i%len(real)]
			if i >= len(real) {
				f.ID = fmt.Sprintf("%s-aug%d", f.ID, i)
				f.Counts = trace.Augment(f.Counts, 120, 0.1, rng)
			}
			if err := yield(f); err != nil {
				return err
			}
		}
		return nil
	}
	if *write != "" {
		return writeCSVGz(*write, len(real[0].Counts), rows)
	}
	x := kshape.NewMatrix(len(real[0].Counts), *n)
	if err := rows(func(f trace.Function) error { return x.Append(f.Counts) }); err != nil {
		return err
	}
	real = nil
	runtime.GC()
	start := time.Now()
	var iterTimes []float64
	last := start
	res, err := kshape.FitMatrix(ctx, x, kshape.Options{K: *k, MaxIter: *iters, Seed: 1, Progress: func(p kshape.Progress) {
		now := time.Now()
		iterTimes = append(iterTimes, now.Sub(last).Seconds())
		last = now
		fmt.Fprintf(os.Stderr, "\rbench-kshape: n=%d iteration %d objective %.1f   ", *n, p.Iter, p.Objective)
	}})
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr)
	total := time.Since(start).Seconds()
	return json.NewEncoder(os.Stdout).Encode(map[string]any{
		"n": *n, "k": *k, "iterations": res.Iterations, "seconds": total,
		"seconds_per_iteration": total / float64(max(1, res.Iterations)), "iteration_seconds": iterTimes,
		"objective": res.Objective, "peak_rss_mib": procstat.PeakRSSMiB(), "cores": runtime.GOMAXPROCS(0),
	})
}

// writeCSVGz writes rows to path as a gzipped Azure-layout CSV.
func writeCSVGz(path string, minutes int, rows func(func(trace.Function) error) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	gz := gzip.NewWriter(f)
	w, err := trace.NewCSVWriter(gz, minutes)
	if err == nil {
		err = errors.Join(rows(w.Write), w.Flush())
	}
	if err = errors.Join(err, gz.Close(), f.Close()); err != nil {
		os.Remove(path)
	}
	return err
}
