package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/mesp-project/mesp/clusterset"
	"github.com/mesp-project/mesp/kshape"
	"github.com/mesp-project/mesp/procstat"
	"github.com/mesp-project/mesp/publish"
	"github.com/mesp-project/mesp/trace"
)

func init() {
	register("cluster", "cluster daily patterns by shape (K-Shape); write clusters.json, Parquet and a plot; 'cluster add' grows new clusters, 'cluster calibrate' recomputes partial-window radii", runCluster)
}

func runCluster(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == "add" {
		return runClusterAdd(ctx, args[1:])
	}
	if len(args) > 0 && args[0] == "calibrate" {
		return runClusterCalibrate(ctx, args[1:])
	}
	fs := pflag.NewFlagSet("cluster", pflag.ContinueOnError)
	data := fs.String("data", "", "Azure-layout CSV or CSV.gz")
	partName := fs.String("part", "train", "split part to cluster: train, test or all")
	kFlag := fs.String("k", "8", "number of clusters, or auto")
	kRange := fs.String("k-range", "2..16", "range of K tried by --k auto")
	out := fs.String("out", "", "output folder")
	seed := fs.Int64("seed", 1, "random seed")
	restarts := fs.Int("restarts", 3, "independent restarts")
	maxIter := fs.Int("max-iter", 100, "iterations cap per restart")
	skipBad := fs.Bool("skip-bad", false, "skip invalid rows instead of failing")
	sample := fs.Int("silhouette-sample", 1000, "series sampled for the silhouette score")
	log1p := fs.Bool("log1p", true, "cluster log1p(counts) (tames bursts)")
	smooth := fs.Int("smooth", 15, "centred moving average over this many minutes before clustering (1: none)")
	summary := fs.String("summary", "", "also write {seconds, objective, iterations, k} as JSON here (benchmarks)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *data == "" || *out == "" {
		return fmt.Errorf("--data and --out are required")
	}
	part, err := trace.ParsePart(*partName)
	if err != nil {
		return err
	}
	// Rows are streamed from the file into the float32 matrix: neither the
	// raw counts nor their float64 transforms are held (500,000 rows would
	// take 5.8 GB each), only the ids. The Parquet files are written by a
	// second pass over the file.
	tr := kshape.Transform{Log1p: *log1p, Smooth: *smooth}
	topts := trace.Options{SkipBad: *skipBad}
	// Each parsed row is garbage once appended, and with the default GOGC
	// the heap may grow to twice the matrix before a collection (7.8 GB at
	// 500,000 rows). The matrix holds no pointers, so collecting more often
	// costs little.
	defer debug.SetGCPercent(debug.SetGCPercent(20))
	var x *kshape.Matrix
	var ids []string
	var shape, prefix []float64
	skipped, err := trace.Each(*data, topts, func(f trace.Function) error {
		if !part.Contains(f.ID) {
			return nil
		}
		if x == nil {
			x = kshape.NewMatrix(len(f.Counts), 0)
			shape, prefix = make([]float64, len(f.Counts)), make([]float64, len(f.Counts)+1)
		}
		ids = append(ids, f.ID)
		if len(ids)%10000 == 0 {
			fmt.Fprintf(os.Stderr, "\rcluster: read %d functions", len(ids))
		}
		return x.Append(tr.ApplyInto(shape, f.Counts, prefix))
	})
	if err != nil {
		return err
	}
	if skipped > 0 {
		fmt.Fprintf(os.Stderr, "\rcluster: skipped %d invalid rows (--skip-bad)\n", skipped)
	}
	if x == nil {
		return fmt.Errorf("%s: no functions in the %s part", *data, part)
	}
	fmt.Fprintf(os.Stderr, "\rcluster: %d functions (%s part) x %d minutes\n", x.Rows(), part, x.Len())
	opts := kshape.Options{MaxIter: *maxIter, Restarts: *restarts, Seed: *seed,
		Progress: func(p kshape.Progress) {
			k := ""
			if p.K > 0 {
				k = fmt.Sprintf("K=%d ", p.K)
			}
			fmt.Fprintf(os.Stderr, "\rcluster: %srestart %d iteration %3d objective %.2f changed %d   ", k, p.Restart+1, p.Iter, p.Objective, p.Changed)
		}}
	start := time.Now()
	res, k, err := fitK(ctx, x, *kFlag, *kRange, opts, *sample)
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	fmt.Fprintf(os.Stderr, "\ncluster: K=%d objective %.2f in %d iterations, %s\n", k, res.Objective, res.Iterations, elapsed.Round(time.Millisecond))
	// A new folder, published in one step: a run killed while writing
	// leaves the previous clustering (and nothing of this one) at --out.
	stage, err := publish.Stage(*out)
	if err != nil {
		return err
	}
	fit := clusterset.Fit{IDs: ids, Length: x.Len(), Result: res, K: k, Seed: *seed, Transform: tr}
	if err := clusterset.Write(ctx, stage, *data, topts, part, fit); err != nil {
		publish.Abort(stage)
		return err
	}
	if err := publish.Commit(stage, *out); err != nil {
		publish.Abort(stage)
		return err
	}
	fmt.Fprintf(os.Stderr, "cluster: published %s\n", *out)
	if *summary != "" {
		b, _ := json.Marshal(map[string]any{"seconds": elapsed.Seconds(), "objective": res.Objective, "iterations": res.Iterations,
			"k": k, "n": len(ids), "peak_rss_mib": procstat.PeakRSSMiB()})
		if err := os.WriteFile(*summary, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// fitK clusters with a given K, or with --k auto picks K in a range by
// silhouette and prints the table it decided from.
func fitK(ctx context.Context, x *kshape.Matrix, kFlag, kRange string, opts kshape.Options, sample int) (*kshape.Result, int, error) {
	if kFlag != "auto" {
		k, err := strconv.Atoi(kFlag)
		if err != nil {
			return nil, 0, fmt.Errorf("--k %q: want a number or auto", kFlag)
		}
		opts.K = k
		res, err := kshape.FitMatrix(ctx, x, opts)
		return res, k, err
	}
	lo, hi, err := parseRange(kRange)
	if err != nil {
		return nil, 0, err
	}
	hi = min(hi, x.Rows())
	best, table, err := kshape.ChooseK(ctx, x, lo, max(lo, hi), opts, sample)
	if err != nil {
		return nil, 0, err
	}
	fmt.Fprintf(os.Stderr, "\n%4s %12s %10s\n", "K", "objective", "silhouette")
	for _, s := range table {
		mark := ""
		if s.K == best.K {
			mark = "  <- chosen"
		}
		fmt.Fprintf(os.Stderr, "%4d %12.2f %10.4f%s\n", s.K, s.Objective, s.Silhouette, mark)
	}
	return best.Result, best.K, nil
}

// readPart reads one part of the fixed train/test split of a trace file.
func readPart(data, partName string, skipBad bool) ([]trace.Function, trace.Part, error) {
	part, err := trace.ParsePart(partName)
	if err != nil {
		return nil, part, err
	}
	fns, err := trace.ReadAll(data, trace.Options{SkipBad: skipBad}, part)
	if err == nil && len(fns) == 0 {
		err = fmt.Errorf("%s: no functions in the %s part", data, part)
	}
	return fns, part, err
}

func parseRange(s string) (int, int, error) {
	a, b, ok := strings.Cut(s, "..")
	lo, err1 := strconv.Atoi(a)
	hi, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || lo < 1 || hi < lo {
		return 0, 0, fmt.Errorf("range %q: want LO..HI", s)
	}
	return lo, hi, nil
}
