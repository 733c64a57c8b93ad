package kshape

import (
	"context"
	"math"
	"math/rand/v2"
	"sort"
)

// Threshold is the q-quantile (e.g. 0.99) of the members' distances to
// their centroid, per cluster: the radius a new pattern must fall within
// to count as "in distribution" for that cluster. Shapeless members
// (constant series, SBD 1 by definition) are left out: they would stretch
// a radius to 1 and make everything look familiar. A radius is never
// below MinThreshold: a cluster of near-identical members (a timer) must
// not turn away an identical newcomer over rounding noise.
func Threshold(res *Result, k int, q float64) []float64 {
	per := make([][]float64, k)
	for i, l := range res.Labels {
		if res.Shapeless == nil || !res.Shapeless[i] {
			per[l] = append(per[l], res.Distances[i])
		}
	}
	out := make([]float64, k)
	for j, d := range per {
		if len(d) > 0 {
			out[j] = Radius(d, q)
		}
	}
	return out
}

// Radius is the q-quantile of distances d (sorted in place), at least
// MinThreshold: one cluster's radius. d must not be empty.
func Radius(d []float64, q float64) float64 {
	sort.Float64s(d)
	idx := int(math.Ceil(q*float64(len(d)))) - 1
	return math.Max(MinThreshold, d[max(0, min(idx, len(d)-1))])
}

// MinThreshold is the smallest cluster radius (SBD).
const MinThreshold = 0.05

// Silhouette is the mean silhouette coefficient on SBD over a random
// sample of at most sample series of x (pairwise SBD is O(sample^2)).
func Silhouette(x *Matrix, labels []int, k, sample int, seed int64) float64 {
	rng := rand.New(rand.NewPCG(uint64(seed), 99))
	idx := rng.Perm(x.Rows())
	if len(idx) > sample {
		idx = idx[:sample]
	}
	n := len(idx)
	m := x.Len()
	p := NewPlan(m)
	spec := make([]Spectrum, n)
	row := make([]float64, m)
	for a, i := range idx {
		spec[a] = p.Spectrum(x.Row(i, row))
	}
	dist := make([]float64, n*n)
	parallelN(n, 0, m, func(p *Plan, a int) {
		for b := a + 1; b < n; b++ {
			d, _ := p.SBD(spec[a], spec[b])
			dist[a*n+b] = d
		}
	})
	for a := range n {
		for b := a + 1; b < n; b++ {
			dist[b*n+a] = dist[a*n+b]
		}
	}
	var total float64
	for a := range n {
		sumTo := make([]float64, k)
		cnt := make([]int, k)
		for b := range n {
			if a != b {
				sumTo[labels[idx[b]]] += dist[a*n+b]
				cnt[labels[idx[b]]]++
			}
		}
		own := labels[idx[a]]
		if cnt[own] == 0 {
			continue // singleton: silhouette 0
		}
		ai := sumTo[own] / float64(cnt[own])
		bi := math.Inf(1)
		for j := range k {
			if j != own && cnt[j] > 0 {
				bi = math.Min(bi, sumTo[j]/float64(cnt[j]))
			}
		}
		if math.IsInf(bi, 1) {
			continue
		}
		total += (bi - ai) / math.Max(ai, bi)
	}
	return total / float64(n)
}

// KScore is one row of the table ChooseK decides from.
type KScore struct {
	K          int
	Objective  float64
	Silhouette float64
	Result     *Result
}

// ChooseK fits every K in [lo, hi] and picks the one with the highest
// silhouette (the objective always falls with K, so it only informs).
// ChoosePatience stops ChooseK once this many values of K past the best
// have not beaten its silhouette: the score rarely recovers, and each K
// costs a whole clustering (2..16 on a large set took over 15 minutes).
const ChoosePatience = 3

func ChooseK(ctx context.Context, x *Matrix, lo, hi int, opts Options, sample int) (best KScore, table []KScore, err error) {
	for k := lo; k <= hi; k++ {
		if best.Result != nil && k > best.K+ChoosePatience {
			break // the silhouette has not improved for ChoosePatience values of K
		}
		o := opts
		o.K = k
		if opts.Progress != nil {
			o.Progress = func(p Progress) {
				p.K = k
				opts.Progress(p)
			}
		}
		res, err := FitMatrix(ctx, x, o)
		if err != nil {
			return KScore{}, nil, err
		}
		s := KScore{K: k, Objective: res.Objective, Silhouette: Silhouette(x, res.Labels, k, sample, opts.Seed), Result: res}
		table = append(table, s)
		if best.Result == nil || s.Silhouette > best.Silhouette {
			best = s
		}
	}
	return best, table, nil
}
