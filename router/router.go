// Package router is MESP's gate: it sends a function's recent per-minute
// counts to the nearest K-Shape centroid by shape-based distance, and flags
// patterns farther from their nearest centroid than that cluster's threshold
// as out of distribution.
package router

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sort"
	"sync"

	"github.com/mesp-project/mesp/kshape"
	"github.com/mesp-project/mesp/manifest"
)

// Route is the router's decision for one pattern.
type Route struct {
	Cluster  int     // nearest cluster id
	Distance float64 // SBD for a full day; 1 - NCC with the best stretch for a partial one
	// OOD is true when the pattern is farther from its nearest centroid
	// than that cluster's threshold: no expert has seen its like, so the
	// dense model serves. (The nearest cluster's radius decides, not the
	// widest: one noisy cluster with a radius near 1 would otherwise make
	// every pattern look familiar.)
	OOD bool
	// Runner is the next nearest cluster (-1 unless the router keeps the
	// runner-up: WithRunnerUp), its distance, and whether the pattern lies
	// within that cluster's radius too (for soft routing).
	Runner         int
	RunnerDistance float64
	RunnerWithin   bool
}

// Router holds the centroids' spectra, computed once.
type Router struct {
	m          int
	ids        []int
	thresholds []float64
	partial    [][]manifest.LengthThreshold // per cluster, ascending lengths
	bank       *kshape.Bank
	stretches  *kshape.StretchBank
	transform  kshape.Transform
	scratch    sync.Pool // of *scratch
	runnerUp   bool
	runnerGap  float64
}

// WithRunnerUp makes every route find the runner-up cluster too (Route's
// Runner fields), at the cost of less pruning. Call it before routing.
func (r *Router) WithRunnerUp() *Router {
	return r.WithRunnerUpWithin(math.Inf(1))
}

// WithRunnerUpWithin is WithRunnerUp for a runner-up whose distance is at
// most gap more than the nearest cluster's (none otherwise): the clusters
// that cannot come that close are pruned, and a pattern near one cluster
// alone routes about as fast as without a runner-up.
func (r *Router) WithRunnerUpWithin(gap float64) *Router {
	r.runnerUp, r.runnerGap = true, gap
	return r
}

// scratch is one routing's working memory, pooled: a route allocates
// nothing.
type scratch struct {
	plan             *kshape.Plan
	shape, prefix, z []float64
}

// ErrPattern marks an unusable input pattern.
var ErrPattern = errors.New("router: bad pattern")

// New builds a router from clusters.json.
func New(cs manifest.Clusters) (*Router, error) {
	if len(cs.Clusters) == 0 || cs.Length < 2 {
		return nil, fmt.Errorf("router: no clusters")
	}
	r := &Router{m: cs.Length, transform: cs.Transform}
	r.scratch.New = func() any {
		return &scratch{plan: kshape.NewPlan(r.m), shape: make([]float64, r.m), prefix: make([]float64, r.m+1), z: make([]float64, r.m)}
	}
	var centroids [][]float64
	for _, c := range cs.Clusters {
		if len(c.Centroid) != r.m {
			return nil, fmt.Errorf("router: cluster %d centroid has %d values, want %d", c.ID, len(c.Centroid), r.m)
		}
		r.ids = append(r.ids, c.ID)
		r.thresholds = append(r.thresholds, c.Threshold)
		r.partial = append(r.partial, c.PartialThresholds)
		centroids = append(centroids, kshape.ZNormalize(c.Centroid))
	}
	p := kshape.NewPlan(r.m)
	r.bank = p.NewBank(centroids)
	r.stretches = p.NewStretchBank(centroids)
	return r, nil
}

// threshold is cluster index j's radius for windows of n minutes: the
// full-day radius for a day, else the calibrated partial radii,
// interpolated between lengths and held flat beyond the shortest and the
// longest.
func (r *Router) threshold(j, n int) float64 {
	pt := r.partial[j]
	if n == r.m || len(pt) == 0 {
		return r.thresholds[j]
	}
	i := sort.Search(len(pt), func(i int) bool { return pt[i].Length >= n })
	switch {
	case i == 0:
		return pt[0].Threshold
	case i == len(pt):
		return pt[len(pt)-1].Threshold
	}
	lo, hi := pt[i-1], pt[i]
	w := float64(n-lo.Length) / float64(hi.Length-lo.Length)
	return lo.Threshold + w*(hi.Threshold-lo.Threshold)
}

// Length is the centroids' length: the longest pattern the router takes.
func (r *Router) Length() int { return r.m }

// Route picks the nearest centroid for counts (1 <= len <= Length).
//
// A full day is compared by SBD, as it was clustered. A pattern shorter
// than a day (the last n minutes known at a forecast origin) is compared
// with every n-minute stretch of each centroid, both z-normalised: its
// distance is 1 - the best stretch's NCC, and it is out of distribution
// when that exceeds the nearest cluster's radius for n-minute windows
// (manifest.Cluster.PartialThresholds), so the OOD rate holds at every
// length.
func (r *Router) Route(ctx context.Context, counts []float64) (Route, error) {
	if err := r.checkLength(len(counts)); err != nil {
		return Route{}, err
	}
	s := r.scratch.Get().(*scratch)
	defer r.scratch.Put(s)
	return r.route(ctx, s, r.transform.ApplyInto(s.shape, counts, s.prefix))
}

// parallelRoutes is the batch size from which routing is spread over the
// cores: a route is about 70 us, so a 64-function request spends 4.5 ms
// routing on one core.
const parallelRoutes = 8

// RouteAll routes every pattern, over all cores for a large batch; on
// errors, the first worker's.
func (r *Router) RouteAll(ctx context.Context, patterns [][]float64) ([]Route, error) {
	routes := make([]Route, len(patterns))
	workers := min(runtime.GOMAXPROCS(0), (len(patterns)+parallelRoutes-1)/parallelRoutes)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(patterns); i += workers {
				rt, err := r.Route(ctx, patterns[i])
				if err != nil {
					errs[w] = err
					return
				}
				routes[i] = rt
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return routes, nil
}

// RouteShape routes a series already in the clusters' representation
// (transformed, e.g. another clustering's centroid): no transform applied.
func (r *Router) RouteShape(ctx context.Context, shape []float64) (Route, error) {
	if err := r.checkLength(len(shape)); err != nil {
		return Route{}, err
	}
	s := r.scratch.Get().(*scratch)
	defer r.scratch.Put(s)
	return r.route(ctx, s, shape)
}

func (r *Router) checkLength(n int) error {
	if n == 0 || n > r.m {
		return fmt.Errorf("%w: %d minutes, want 1..%d", ErrPattern, n, r.m)
	}
	return nil
}

func (r *Router) route(ctx context.Context, s *scratch, shape []float64) (Route, error) {
	if err := ctx.Err(); err != nil {
		return Route{}, err
	}
	n := len(shape)
	p, z := s.plan, s.z
	clear(z[n:])
	kshape.ZNormalizeInto(z[:n], shape)
	best, runner := kshape.Match{}, kshape.Match{Centroid: -1}
	switch x := p.ScratchSpectrum(z); {
	case n == r.m && r.runnerUp:
		best, runner = p.NearestTwoWithin(x, r.bank, r.runnerGap)
	case n == r.m:
		best.Centroid, best.NCC, _, _ = p.Nearest(x, r.bank)
	case r.runnerUp:
		best, runner = p.NearestStretchTwoWithin(x, n, r.stretches, r.runnerGap)
	default:
		best.Centroid, best.NCC, _ = p.NearestStretch(x, n, r.stretches)
	}
	j, d := best.Centroid, distance(best.NCC)
	rt := Route{Cluster: r.ids[j], Distance: d, OOD: d > r.threshold(j, n), Runner: -1}
	if k := runner.Centroid; k >= 0 {
		rt.Runner, rt.RunnerDistance = r.ids[k], distance(runner.NCC)
		rt.RunnerWithin = rt.RunnerDistance <= r.threshold(k, n)
	}
	return rt, nil
}

// distance is 1 - NCC, NCC clamped to [-1, 1].
func distance(ncc float64) float64 { return 1 - math.Max(-1, math.Min(1, ncc)) }
