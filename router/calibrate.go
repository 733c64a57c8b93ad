package router

import (
	"context"
	"fmt"
	"hash/fnv"

	"github.com/mesp-project/mesp/kshape"
	"github.com/mesp-project/mesp/manifest"
)

// CalibrationLengths are the partial window lengths whose radii are
// calibrated for centroids of m minutes: every hour from one hour, and
// m-1 (the longest partial window).
func CalibrationLengths(m int) []int {
	var out []int
	for n := 60; n < m-1; n += 60 {
		out = append(out, n)
	}
	return append(out, m-1)
}

// Window is the n-minute window of a function's day that calibration (and
// its test) routes: it ends at a minute drawn from the function id and n,
// uniform over the day, because a server sees the last n minutes at any
// time of day.
func Window(id string, counts []float64, n int) []float64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s/%d", id, n)
	end := n + int(h.Sum64()%uint64(len(counts)-n+1))
	return counts[end-n : end]
}

// MinWindows is the fewest windows a cluster must receive at a length for
// a radius there; a quantile of fewer says little.
const MinWindows = 10

// Calibrate computes each cluster's partial-window radii (in clusters.json
// order): at every length, one Window of each day in days (raw counts of
// the clusters' length, keyed by function id) is routed, and a cluster's
// radius there is the q-quantile of the distances of the windows it
// receives (kshape.Radius). Shapeless windows are left out, as in
// kshape.Threshold. progress, if not nil, is told of each length done.
func (r *Router) Calibrate(ctx context.Context, ids []string, days [][]float64, lengths []int, q float64, progress func(done, total int)) ([][]manifest.LengthThreshold, error) {
	if len(ids) != len(days) {
		return nil, fmt.Errorf("router: %d ids for %d days", len(ids), len(days))
	}
	for i, d := range days {
		if len(d) != r.m {
			return nil, fmt.Errorf("router: calibration day %q has %d minutes, want %d", ids[i], len(d), r.m)
		}
	}
	index := make(map[int]int, len(r.ids))
	for j, id := range r.ids {
		index[id] = j
	}
	out := make([][]manifest.LengthThreshold, len(r.ids))
	for li, n := range lengths {
		if n < 2 || n >= r.m {
			return nil, fmt.Errorf("router: calibration length %d, want 2..%d", n, r.m-1)
		}
		windows := make([][]float64, len(days))
		for i, d := range days {
			windows[i] = Window(ids[i], d, n)
		}
		routes, err := r.RouteAll(ctx, windows)
		if err != nil {
			return nil, err
		}
		per := make([][]float64, len(r.ids))
		for _, rt := range routes {
			// Shapeless (flat) windows have distance 1 by definition; so
			// would a window matching no stretch at all, which real data
			// does not produce.
			if rt.Distance < 1 {
				j := index[rt.Cluster]
				per[j] = append(per[j], rt.Distance)
			}
		}
		for j, d := range per {
			if len(d) >= MinWindows {
				out[j] = append(out[j], manifest.LengthThreshold{Length: n, Threshold: kshape.Radius(d, q)})
			}
		}
		if progress != nil {
			progress(li+1, len(lengths))
		}
	}
	return out, nil
}
