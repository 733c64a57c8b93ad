package kshape

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
)

// Options controls Fit.
type Options struct {
	K        int
	MaxIter  int   // iterations cap per restart (default 100)
	Restarts int   // independent starts; the lowest objective wins (default 1)
	Seed     int64 // same seed, same data: same result
	// Init is "kshape++" (default: seeding by D^2 sampling on SBD) or
	// "random" (random initial assignment, as tslearn).
	Init    string
	Workers int // goroutines (default GOMAXPROCS)
	// Progress, if set, is called after every iteration.
	Progress func(p Progress)
}

// Progress reports one finished iteration.
type Progress struct {
	K             int // the K being tried (ChooseK), 0 otherwise
	Restart, Iter int
	Objective     float64
	Changed       int // assignments that changed in this iteration
}

// Result is a clustering.
type Result struct {
	Centroids [][]float64 // K z-normalised centroids
	Labels    []int       // cluster of each series
	Distances []float64   // SBD of each series to its centroid
	Objective float64     // sum of Distances
	// Shapeless marks constant series (zero norm after z-normalisation):
	// their SBD to anything is 1 by definition and says nothing of shape.
	Shapeless  []bool
	Iterations int
	Restart    int // which restart won
}

// unknownShift marks a series whose alignment to its centroid is not known
// (it has not been assigned, or was moved by empty-cluster repair).
const unknownShift = math.MinInt

// ErrInput reports unusable input.
var ErrInput = errors.New("kshape: bad input")

// Fit clusters series (each of the same length; they are z-normalised
// here) into opts.K clusters.
func Fit(ctx context.Context, series [][]float64, opts Options) (*Result, error) {
	x, err := MatrixOf(series)
	if err != nil {
		return nil, err
	}
	return FitMatrix(ctx, x, opts)
}

// FitMatrix is Fit on a Matrix (large data, streamed in by the caller).
func FitMatrix(ctx context.Context, x *Matrix, opts Options) (*Result, error) {
	d, err := newDataset(x, &opts)
	if err != nil {
		return nil, err
	}
	var best *Result
	for r := range opts.Restarts {
		rng := rand.New(rand.NewPCG(uint64(opts.Seed), uint64(r)))
		var labels []int
		var centroids [][]float64
		if opts.Init == "random" {
			labels = make([]int, d.n)
			for i := range labels {
				labels[i] = rng.IntN(opts.K)
			}
		} else {
			centroids = d.seedPlusPlus(rng, opts.K)
		}
		res, err := d.run(ctx, r, labels, centroids, opts)
		if err != nil {
			return nil, err
		}
		if best == nil || res.Objective < best.Objective {
			best = res
		}
	}
	return best, nil
}

func (o *Options) setDefaults() {
	if o.MaxIter <= 0 {
		o.MaxIter = 100
	}
	if o.Restarts <= 0 {
		o.Restarts = 1
	}
}

// dataset is the z-normalised data; spectra are computed on the fly.
type dataset struct {
	n, m    int
	x       *Matrix
	workers int
}

func newDataset(x *Matrix, opts *Options) (*dataset, error) {
	opts.setDefaults()
	if x == nil || x.Rows() == 0 {
		return nil, fmt.Errorf("%w: no series", ErrInput)
	}
	if opts.K < 1 || opts.K > x.Rows() {
		return nil, fmt.Errorf("%w: k=%d for %d series", ErrInput, opts.K, x.Rows())
	}
	if x.Len() < 2 {
		return nil, fmt.Errorf("%w: series of length %d", ErrInput, x.Len())
	}
	return &dataset{n: x.Rows(), m: x.Len(), x: x, workers: opts.Workers}, nil
}

func datasetOf(series [][]float64, opts *Options) (*dataset, error) {
	x, err := MatrixOf(series)
	if err != nil {
		return nil, err
	}
	return newDataset(x, opts)
}

// spectrum is row i's spectrum in p's scratch space (valid until the next
// call on p).
func (d *dataset) spectrum(p *Plan, i int) Spectrum {
	return p.ScratchSpectrum(d.x.Row(i, p.row))
}

// parallel runs fn(i) for i in [0, n) on the workers, each with its own Plan.
func (d *dataset) parallel(fn func(p *Plan, i int)) {
	parallelN(d.n, d.workers, d.m, fn)
}

func parallelN(n, workers, m int, fn func(p *Plan, i int)) {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = min(workers, n)
	var wg sync.WaitGroup
	chunk := (n + workers - 1) / workers
	for w := range workers {
		lo, hi := w*chunk, min((w+1)*chunk, n)
		if lo >= hi {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := NewPlan(m)
			for i := lo; i < hi; i++ {
				fn(p, i)
			}
		}()
	}
	wg.Wait()
}

// seedPlusPlus picks k initial centroids: the first uniformly, each next
// with probability proportional to its squared SBD to the nearest chosen.
func (d *dataset) seedPlusPlus(rng *rand.Rand, k int) [][]float64 {
	first := rng.IntN(d.n)
	centroids := [][]float64{d.x.Row(first, make([]float64, d.m))}
	nearest := make([]float64, d.n)
	for i := range nearest {
		nearest[i] = math.Inf(1)
	}
	for len(centroids) < k {
		cs := NewPlan(d.m).Spectrum(centroids[len(centroids)-1])
		d.parallel(func(p *Plan, i int) {
			dist, _ := p.SBD(d.spectrum(p, i), cs)
			nearest[i] = min(nearest[i], dist)
		})
		var total float64
		for _, v := range nearest {
			total += v * v
		}
		pick := rng.IntN(d.n)
		if total > 0 {
			u := rng.Float64() * total
			for i, v := range nearest {
				u -= v * v
				if u <= 0 {
					pick = i
					break
				}
			}
		}
		centroids = append(centroids, d.x.Row(pick, make([]float64, d.m)))
	}
	return centroids
}

// run iterates refinement (shape extraction) and assignment until no label
// changes or MaxIter. With centroids given, it starts by assigning; with
// labels given, by extracting shapes from that assignment.
func (d *dataset) run(ctx context.Context, restart int, labels []int, centroids [][]float64, opts Options) (*Result, error) {
	dist := make([]float64, d.n)
	shift := make([]int, d.n)
	for i := range shift {
		shift[i] = unknownShift
	}
	if centroids == nil {
		centroids = make([][]float64, opts.K)
		for j := range centroids {
			centroids[j] = make([]float64, d.m) // zero: shape extraction skips alignment
		}
		d.repairEmpty(labels, dist, shift, opts.K)
		centroids = d.refine(labels, shift, centroids, opts.K)
	} else {
		labels = make([]int, d.n)
		for i := range labels {
			labels[i] = -1
		}
	}
	res := &Result{Restart: restart}
	prevObj := math.Inf(1)
	var prevCentroids [][]float64
	for it := 1; it <= opts.MaxIter; it++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		changed := d.assign(centroids, labels, dist, shift)
		if d.repairEmpty(labels, dist, shift, opts.K) {
			changed++
		}
		res.Iterations = it
		obj := sum(dist)
		if opts.Progress != nil {
			opts.Progress(Progress{Restart: restart, Iter: it, Objective: obj, Changed: changed})
		}
		// Stop when nothing moves or the objective stops falling; if it
		// rose, keep the previous centroids (as tslearn does).
		if obj > prevObj && prevCentroids != nil {
			centroids = prevCentroids
			break
		}
		if changed == 0 || prevObj-obj < 1e-6*float64(d.n) {
			break
		}
		prevObj, prevCentroids = obj, centroids
		centroids = d.refine(labels, shift, centroids, opts.K)
	}
	// Final distances are to the final centroids. A cluster this last
	// assignment empties gets the series farthest from its own centroid
	// and a centroid refined from it (a few rounds at most), so that no
	// cluster comes back without members when the iteration cap stopped
	// the run.
	d.assign(centroids, labels, dist, shift)
	for round := 0; round < opts.K && d.repairEmpty(labels, dist, shift, opts.K); round++ {
		centroids = d.refine(labels, shift, centroids, opts.K)
		d.assign(centroids, labels, dist, shift)
	}
	res.Centroids, res.Labels, res.Distances, res.Objective = centroids, labels, dist, sum(dist)
	res.Shapeless = append([]bool(nil), d.x.shapeless...)
	return res, nil
}

func sum(x []float64) (s float64) {
	for _, v := range x {
		s += v
	}
	return s
}

// assign gives each series its nearest centroid by SBD and records the
// shift that aligns it to that centroid; it returns how many labels
// changed.
func (d *dataset) assign(centroids [][]float64, labels []int, dist []float64, shift []int) int {
	bank := NewPlan(d.m).NewBank(centroids)
	var mu sync.Mutex
	changed := 0
	d.parallel(func(p *Plan, i int) {
		j, ncc, s, _ := p.Nearest(d.spectrum(p, i), bank)
		// MaxNCC(row, centroid) = s means row[t+s] matches centroid[t]:
		// Shift(row, -s) is the row aligned to the centroid.
		dist[i], shift[i] = 1-ncc, -s
		if labels[i] != j {
			mu.Lock()
			changed++
			mu.Unlock()
			labels[i] = j
		}
	})
	return changed
}

// repairEmpty moves, for each empty cluster, the series farthest from its
// own centroid into it (rather than restarting or leaving a zero centroid).
func (d *dataset) repairEmpty(labels []int, dist []float64, shift []int, k int) bool {
	repaired := false
	for {
		size := make([]int, k)
		for _, l := range labels {
			size[l]++
		}
		empty := -1
		for j, s := range size {
			if s == 0 {
				empty = j
				break
			}
		}
		if empty < 0 {
			return repaired
		}
		// A shapeless (constant) series is at SBD 1 from everything, the
		// farthest by definition, but gives an empty cluster no shape to
		// hold on to: prefer the farthest series with a shape.
		far, fi := -1.0, -1
		for pass := 0; pass < 2 && fi < 0; pass++ {
			for i, l := range labels {
				if size[l] > 1 && dist[i] > far && (pass == 1 || !d.x.shapeless[i]) {
					far, fi = dist[i], i
				}
			}
		}
		labels[fi] = empty
		dist[fi] = 0
		shift[fi] = unknownShift
		repaired = true
	}
}

// refine computes each cluster's new centroid by shape extraction, the
// clusters in parallel.
func (d *dataset) refine(labels []int, shift []int, old [][]float64, k int) [][]float64 {
	members := make([][]int, k)
	for i, l := range labels {
		members[l] = append(members[l], i)
	}
	out := make([][]float64, k)
	parallelN(k, d.workers, d.m, func(p *Plan, j int) {
		out[j] = d.shapeExtract(p, members[j], shift, old[j])
	})
	return out
}

// shapeExtract returns the z-normalised top eigenvector of M = Q^T S Q
// where S = A^T A over the members aligned to ref, and Q = I - 11^T/m
// centres a vector. M is never formed: power iteration applies
// v -> Q A^T A Q v in O(n_j m), instead of O(m^2) memory and O(m^3) time
// for eigendecomposing a 1440 x 1440 matrix. Nor is A: each aligned member
// is read in place from the matrix as the part of its row that overlaps
// the window after shifting (zeros shifted in contribute nothing), so
// refinement needs no memory per member; products accumulate in float64.
func (d *dataset) shapeExtract(p *Plan, members []int, shift []int, ref []float64) []float64 {
	m := d.m
	if len(members) == 0 {
		return append([]float64(nil), ref...)
	}
	refSpec := p.Spectrum(ref) // owned copy: member spectra reuse p's scratch
	// Align each member to the reference (zeros shifted in), as tslearn and
	// the authors' code do; the centroid is z-normalised at the end. The
	// assignment step found the shift against this same reference unless
	// the member was moved since. A zero reference (the first refinement
	// from labels) means no alignment.
	shifts := make([]int, len(members))
	if refSpec.Norm > 0 {
		for r, i := range members {
			s := shift[i]
			if s == unknownShift {
				_, s = p.MaxNCC(refSpec, d.spectrum(p, i))
			}
			shifts[r] = s
		}
	}
	// aligned returns member r's aligned values that can be non-zero and
	// where they start: aligned[t] = row[t-s] for t in [lo, lo+len(seg)).
	aligned := func(r int) (seg []float32, lo int) {
		i, s := members[r], shifts[r]
		row := d.x.row32(i)
		if s >= 0 {
			return row[:m-min(s, m)], min(s, m)
		}
		return row[min(-s, m):], 0
	}
	v := make([]float64, m)
	// Warm start from the previous centroid; from the members' mean if none.
	if refSpec.Norm > 0 {
		copy(v, ref)
	} else {
		for r := range members {
			seg, lo := aligned(r)
			for t, x := range seg {
				v[lo+t] += float64(x)
			}
		}
	}
	center(v)
	if norm(v) == 0 {
		for t := range v {
			v[t] = math.Sin(float64(t + 1)) // any vector not orthogonal to the top one
		}
		center(v)
	}
	scale(v, 1/norm(v))
	w := make([]float64, m)
	for it := 0; it < 1000; it++ {
		clear(w)
		for r := range members {
			seg, lo := aligned(r)
			vs, ws := v[lo:lo+len(seg)], w[lo:lo+len(seg)]
			var dot float64
			for t, x := range seg {
				dot += float64(x) * vs[t]
			}
			for t, x := range seg {
				ws[t] += float64(x) * dot
			}
		}
		center(w)
		nw := norm(w)
		if nw == 0 {
			break
		}
		scale(w, 1/nw)
		var diff float64
		for t := range w {
			diff = math.Max(diff, math.Abs(w[t]-v[t]))
		}
		v, w = w, v
		if diff < 1e-9 {
			break
		}
	}
	// The eigenvector's sign is arbitrary: keep the one closer to the
	// aligned members (sum of Euclidean distances, as tslearn), with
	// |a -+ v|^2 = |v|^2 + |a|^2 -+ 2 a.v over the member's non-zero part.
	vv := norm(v) * norm(v)
	var plus, minus float64
	for r := range members {
		seg, lo := aligned(r)
		var aa, av float64
		for t, x := range seg {
			aa += float64(x) * float64(x)
			av += float64(x) * v[lo+t]
		}
		plus += math.Sqrt(math.Max(0, vv+aa-2*av))
		minus += math.Sqrt(math.Max(0, vv+aa+2*av))
	}
	if minus < plus {
		scale(v, -1)
	}
	return ZNormalize(v)
}

func center(v []float64) {
	var mean float64
	for _, x := range v {
		mean += x
	}
	mean /= float64(len(v))
	for i := range v {
		v[i] -= mean
	}
}

func norm(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x * x
	}
	return math.Sqrt(s)
}

func scale(v []float64, f float64) {
	for i := range v {
		v[i] *= f
	}
}
