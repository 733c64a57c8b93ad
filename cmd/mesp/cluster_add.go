package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/mesp-project/mesp/kshape"
	"github.com/mesp-project/mesp/manifest"
	"github.com/mesp-project/mesp/oodlog"
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
	trusted, err := parseSources(*sources)
	if err != nil {
		return err
	}
	fns, skipped, err := readNovel(*from, cs.Length, trusted)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "cluster add: %d patterns of %d minutes (%d of other lengths or untrusted sources skipped)\n", len(fns), cs.Length, skipped)
	if len(fns) < *minSize {
		return fmt.Errorf("%d patterns, fewer than --min-size %d", len(fns), *minSize)
	}
	// The existing clusters' representation, so new centroids compare.
	tr := cs.Transform
	series := make([][]float64, len(fns))
	for i, f := range fns {
		series[i] = tr.Apply(f.Counts)
	}
	// At most one cluster per min-size patterns.
	hi := *kRange
	if lo, h, err := parseRange(*kRange); err == nil {
		hi = fmt.Sprintf("%d..%d", lo, max(lo, min(h, len(fns)/max(1, *minSize))))
	}
	x, err := kshape.MatrixOf(series)
	if err != nil {
		return err
	}
	res, k, err := fitK(ctx, x, *kFlag, hi, kshape.Options{Seed: *seed, Restarts: 3}, 500)
	if err != nil {
		return err
	}
	// A candidate is new when its centroid is out of distribution for the
	// existing router: farther from its nearest existing centroid than that
	// cluster's threshold.
	rt, err := router.New(cs)
	if err != nil {
		return err
	}
	thresholds := kshape.Threshold(res, k, 0.99)
	nextID := 0
	for _, c := range cs.Clusters {
		nextID = max(nextID, c.ID+1)
	}
	var added []string
	var addedIDs []string
	var addedDays [][]float64
	newIDs := map[int]bool{}
	for j := range k {
		var members []trace.Function
		var dists []float64
		for i, l := range res.Labels {
			if l == j {
				members = append(members, fns[i])
				dists = append(dists, res.Distances[i])
			}
		}
		route, err := rt.RouteShape(ctx, res.Centroids[j])
		if err != nil {
			return err
		}
		if len(members) < *minSize || !route.OOD {
			fmt.Fprintf(os.Stderr, "  candidate %d: %d members, nearest existing cluster %d at SBD %.3f: not new, dropped\n", j, len(members), route.Cluster, route.Distance)
			continue
		}
		id := nextID
		nextID++
		name := fmt.Sprintf("cluster-%d.parquet", id)
		if err := trace.WriteParquet(filepath.Join(*models, name), members); err != nil {
			return err
		}
		cs.Clusters = append(cs.Clusters, manifest.Cluster{ID: id, Size: len(members), Centroid: res.Centroids[j], Threshold: thresholds[j], Parquet: name})
		for i, f := range members {
			cs.Members = append(cs.Members, manifest.Member{Function: f.ID, Cluster: id, Distance: dists[i]})
			addedIDs, addedDays = append(addedIDs, f.ID), append(addedDays, f.Counts)
		}
		added = append(added, strconv.Itoa(id))
		newIDs[id] = true
		fmt.Fprintf(os.Stderr, "  new cluster %d: %d members, nearest existing cluster %d at SBD %.3f\n", id, len(members), route.Cluster, route.Distance)
	}
	if len(added) == 0 {
		fmt.Fprintln(os.Stderr, "cluster add: no new cluster")
		return nil
	}
	cs.K = len(cs.Clusters)
	// New clusters' partial-window radii from their own members' windows
	// (the existing clusters keep theirs; a new cluster that receives too
	// few windows at a length falls back to its full-day radius there).
	if err := setRadii(ctx, &cs, addedIDs, addedDays, newIDs); err != nil {
		return err
	}
	if err := manifest.Write(path, cs); err != nil {
		return err
	}
	// The ids for `make train-experts CLUSTERS=...`, on stdout.
	fmt.Println(strings.Join(added, ","))
	return nil
}

// readNovel reads patterns from an OOD log (folder or file) or a CSV,
// keeping full-length patterns, the latest per function.
// parseSources reads --source values: addresses or CIDR ranges.
func parseSources(vals []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, v := range vals {
		if p, err := netip.ParsePrefix(v); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(v)
		if err != nil {
			return nil, fmt.Errorf("--source %q: want an address or a CIDR range", v)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// trustedSource says whether a record's source is among the trusted ones
// (all are, when none are given; a record without a source is not, then).
func trustedSource(src string, trusted []netip.Prefix) bool {
	if len(trusted) == 0 {
		return true
	}
	a, err := netip.ParseAddr(src)
	if err != nil {
		return false
	}
	for _, p := range trusted {
		if p.Contains(a.Unmap()) {
			return true
		}
	}
	return false
}

func readNovel(from string, length int, trusted []netip.Prefix) ([]trace.Function, int, error) {
	st, err := os.Stat(from)
	if err != nil {
		return nil, 0, err
	}
	var recs []oodlog.Record
	switch {
	case st.IsDir():
		recs, _, err = oodlog.ReadDir(from)
	case strings.Contains(filepath.Base(from), ".jsonl"):
		recs, _, err = oodlog.ReadFile(from)
	default:
		fns, err := trace.ReadAll(from, trace.Options{}, trace.All)
		return fns, 0, err
	}
	if err != nil {
		return nil, 0, err
	}
	latest := map[string]int{}
	var out []trace.Function
	skipped := 0
	for _, r := range recs {
		if len(r.Counts) != length || !trustedSource(r.Source, trusted) {
			skipped++
			continue
		}
		f := trace.Function{ID: r.Function, Owner: r.Function, App: r.Function, Trigger: "unknown", Counts: r.Counts}
		if i, ok := latest[r.Function]; ok {
			out[i] = f
			continue
		}
		latest[r.Function] = len(out)
		out = append(out, f)
	}
	return out, skipped, nil
}
