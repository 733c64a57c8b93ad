package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/mesp-project/mesp/clusterset"
	"github.com/mesp-project/mesp/kshape"
	"github.com/mesp-project/mesp/manifest"
	"github.com/mesp-project/mesp/novelty"
	"github.com/mesp-project/mesp/router"
	"github.com/mesp-project/mesp/trace"
)

// runClusterAdd clusters novel patterns and appends the clusters that are
// really new to clusters.json, leaving every existing cluster as it was.
func runClusterAdd(ctx context.Context, args []string) error {
	fs := pflag.NewFlagSet("cluster add", pflag.ContinueOnError)
	from := fs.String("from", "", "OOD log folder or file (mesp serve --ood-dir), or an Azure-layout CSV(.gz)")
	models := fs.String("models", "models", "models folder with clusters.json")
	kFlag := fs.String("k", "auto", "clusters to look for among the novel patterns, or auto")
	kRange := fs.String("k-range", "1..4", "range of K tried by --k auto")
	minSize := fs.Int("min-size", 5, "smallest new cluster kept")
	seed := fs.Int64("seed", 1, "random seed")
	sources := fs.StringSlice("source", nil, "learn only from OOD records sent from these client addresses or CIDR ranges (repeatable; default: all)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *from == "" {
		return fmt.Errorf("--from is required")
	}
	path := filepath.Join(*models, "clusters.json")
	cs, err := manifest.ReadClusters(path)
	if err != nil {
		return err
	}
	trusted, err := novelty.ParseSources(*sources)
	if err != nil {
		return fmt.Errorf("--source: %w", err)
	}
	fns, skipped, err := novelty.Read(*from, cs.Length, trusted)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "cluster add: %d patterns of %d minutes (%d of other lengths or untrusted sources skipped)\n", len(fns), cs.Length, skipped)
	if len(fns) < *minSize {
		return fmt.Errorf("%d patterns, fewer than --min-size %d", len(fns), *minSize)
	}
	// The existing clusters' representation, so new centroids compare.
	series := make([][]float64, len(fns))
	for i, f := range fns {
		series[i] = cs.Transform.Apply(f.Counts)
	}
	hi := *kRange
	if lo, h, err := parseRange(*kRange); err == nil {
		hi = fmt.Sprintf("%d..%d", lo, novelty.MaxK(lo, h, len(fns), *minSize))
	}
	x, err := kshape.MatrixOf(series)
	if err != nil {
		return err
	}
	res, k, err := fitK(ctx, x, *kFlag, hi, kshape.Options{Seed: *seed, Restarts: 3}, 500)
	if err != nil {
		return err
	}
	rt, err := router.New(cs)
	if err != nil {
		return err
	}
	cands, err := novelty.Judge(ctx, rt, fns, res, k, *minSize)
	if err != nil {
		return err
	}
	for j, c := range cands {
		verdict := "not new, dropped"
		if c.New {
			verdict = "new"
		}
		fmt.Fprintf(os.Stderr, "  candidate %d: %d members, nearest existing cluster %d at SBD %.3f: %s\n", j, len(c.Members), c.Nearest.Cluster, c.Nearest.Distance, verdict)
	}
	added := novelty.Append(&cs, cands)
	if len(added) == 0 {
		fmt.Fprintln(os.Stderr, "cluster add: no new cluster")
		return nil
	}
	var ids, addedIDs []string
	var addedDays [][]float64
	newIDs := map[int]bool{}
	for _, a := range added {
		if err := trace.WriteParquet(filepath.Join(*models, a.Cluster.Parquet), a.Members); err != nil {
			return err
		}
		for _, f := range a.Members {
			addedIDs, addedDays = append(addedIDs, f.ID), append(addedDays, f.Counts)
		}
		ids = append(ids, strconv.Itoa(a.Cluster.ID))
		newIDs[a.Cluster.ID] = true
	}
	// New clusters' partial-window radii from their own members' windows
	// (the existing clusters keep theirs; a new cluster that receives too
	// few windows at a length falls back to its full-day radius there).
	if err := clusterset.SetRadii(ctx, &cs, addedIDs, addedDays, newIDs); err != nil {
		return err
	}
	if err := manifest.Write(path, cs); err != nil {
		return err
	}
	// The ids for `make train-experts CLUSTERS=...`, on stdout.
	fmt.Println(strings.Join(ids, ","))
	return nil
}
