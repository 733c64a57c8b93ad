// Package novelty decides which clusters are worth adding among patterns
// the router found out of distribution (`mesp cluster add`): it reads the
// patterns from an OOD log or a CSV, keeping only trusted sources, and
// judges the candidates of a K-Shape fit of them. A candidate is added
// only if it has enough members and its own centroid is out of
// distribution for the existing router, so an existing cluster is never
// duplicated, and existing clusters are never changed.
package novelty

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/mesp-project/mesp/kshape"
	"github.com/mesp-project/mesp/manifest"
	"github.com/mesp-project/mesp/oodlog"
	"github.com/mesp-project/mesp/router"
	"github.com/mesp-project/mesp/trace"
)

// Sources are the client addresses whose OOD records may be learnt from;
// none means every record.
type Sources []netip.Prefix

// ParseSources reads addresses or CIDR ranges.
func ParseSources(vals []string) (Sources, error) {
	var out Sources
	for _, v := range vals {
		if p, err := netip.ParsePrefix(v); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(v)
		if err != nil {
			return nil, fmt.Errorf("source %q: want an address or a CIDR range", v)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// Trusted says whether a record's source may be learnt from (all may, when
// no sources are set; a record without a source may not, then).
func (s Sources) Trusted(src string) bool {
	if len(s) == 0 {
		return true
	}
	a, err := netip.ParseAddr(src)
	if err != nil {
		return false
	}
	for _, p := range s {
		if p.Contains(a.Unmap()) {
			return true
		}
	}
	return false
}

// Read reads patterns of the given length from an OOD log (folder or
// .jsonl file), the latest per function and only from trusted sources, or
// every row of an Azure-layout CSV. It also says how many log records it
// skipped.
func Read(from string, length int, trusted Sources) ([]trace.Function, int, error) {
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
		if len(r.Counts) != length || !trusted.Trusted(r.Source) {
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

// MaxK caps the largest K worth trying on n patterns: at most one cluster
// per minSize patterns, never below lo.
func MaxK(lo, hi, n, minSize int) int {
	return max(lo, min(hi, n/max(1, minSize)))
}

// Candidate is one cluster of a K-Shape fit of the novel patterns.
type Candidate struct {
	Centroid  []float64
	Radius    float64 // the 99% quantile of its members' distances
	Members   []trace.Function
	Distances []float64
	// Nearest is the existing router's answer for the centroid; New is
	// whether the candidate is added (enough members, centroid OOD).
	Nearest router.Route
	New     bool
}

// Judge splits res (a K-Shape fit of fns, k clusters) into candidates and
// says which are new for the existing router rt.
func Judge(ctx context.Context, rt *router.Router, fns []trace.Function, res *kshape.Result, k, minSize int) ([]Candidate, error) {
	if len(res.Labels) != len(fns) || len(res.Centroids) != k {
		return nil, fmt.Errorf("novelty: a fit of %d series and %d centroids for %d patterns and k=%d", len(res.Labels), len(res.Centroids), len(fns), k)
	}
	radii := kshape.Threshold(res, k, 0.99)
	out := make([]Candidate, k)
	for j := range k {
		c := Candidate{Centroid: res.Centroids[j], Radius: radii[j]}
		for i, l := range res.Labels {
			if l == j {
				c.Members = append(c.Members, fns[i])
				c.Distances = append(c.Distances, res.Distances[i])
			}
		}
		route, err := rt.RouteShape(ctx, c.Centroid)
		if err != nil {
			return nil, err
		}
		c.Nearest, c.New = route, route.OOD && len(c.Members) >= minSize
		out[j] = c
	}
	return out, nil
}

// Added is a new cluster appended to a set, with its members.
type Added struct {
	Cluster manifest.Cluster
	Members []trace.Function
}

// Append adds the new candidates to cs as clusters numbered after the
// existing ones, each with its Parquet file's name and its members, and
// returns them; the existing clusters are left as they are.
func Append(cs *manifest.Clusters, cands []Candidate) []Added {
	next := 0
	for _, c := range cs.Clusters {
		next = max(next, c.ID+1)
	}
	var added []Added
	for _, c := range cands {
		if !c.New {
			continue
		}
		cl := manifest.Cluster{ID: next, Size: len(c.Members), Centroid: c.Centroid, Threshold: c.Radius,
			Parquet: fmt.Sprintf("cluster-%d.parquet", next)}
		next++
		cs.Clusters = append(cs.Clusters, cl)
		for i, f := range c.Members {
			cs.Members = append(cs.Members, manifest.Member{Function: f.ID, Cluster: cl.ID, Distance: c.Distances[i]})
		}
		added = append(added, Added{Cluster: cl, Members: c.Members})
	}
	cs.K = len(cs.Clusters)
	return added
}
