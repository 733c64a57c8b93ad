package kshape

import (
	"math"
	"math/rand/v2"
	"testing"
)

// bruteStretch is MaxStretchNCC by definition: every start, wrapping,
// both sides z-normalised, the mean product.
func bruteStretch(window, centroid []float64) (float64, int) {
	best, bs := 0.0, 0
	for s := range centroid {
		if v := stretchNCC(window, centroid, s); v > best {
			best, bs = v, s
		}
	}
	return best, bs
}

// stretchNCC is the NCC of the window with the stretch starting at s.
func stretchNCC(window, centroid []float64, s int) float64 {
	n, m := len(window), len(centroid)
	stretch := make([]float64, n)
	for t := range stretch {
		stretch[t] = centroid[(s+t)%m]
	}
	w, z := ZNormalize(window), ZNormalize(stretch)
	var dot float64
	for t := range w {
		dot += w[t] * z[t]
	}
	return dot / float64(n)
}

func TestMaxStretchNCCMatchesDefinition(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	m := 300
	walk := func() []float64 { return randomWalk(rng, m) }
	centroids := [][]float64{ZNormalize(walk()), ZNormalize(walk()), make([]float64, m)}
	// a centroid flat over its first half: those stretches match nothing
	centroids[2] = ZNormalize(append(make([]float64, m/2), walk()[:m-m/2]...))
	p := NewPlan(m)
	b := p.NewStretchBank(centroids)
	// More lengths than the bank keeps spreads for, twice over: answers
	// stay exact whether a length's spreads are kept, rebuilt or dropped,
	// and the bank keeps a bounded number.
	lengths := []int{3, 17, 60, 150, 299, 5, 8, 13, 21, 34, 55, 89}
	for _, n := range append(lengths, lengths...) {
		for trial := range 4 {
			window := walk()[:n]
			if trial == 0 { // cut from centroid 1 across its end: a perfect match
				window = append(append([]float64(nil), centroids[1][m-n/2:]...), centroids[1][:n-n/2]...)
			}
			x := p.Spectrum(append(ZNormalize(window), make([]float64, m-n)...))
			for c := range centroids {
				got, gs := p.MaxStretchNCC(x, n, b, c)
				want, _ := bruteStretch(window, centroids[c])
				// the start reported must reach the value (ties may pick another)
				at := stretchNCC(window, centroids[c], gs)
				if math.Abs(got-want) > 1e-9 || (want > 0 && math.Abs(at-got) > 1e-9) {
					t.Fatalf("n=%d trial %d centroid %d: got %.12f at %d (%.12f there), want %.12f", n, trial, c, got, gs, at, want)
				}
			}
			if trial == 0 {
				j, ncc, s := p.NearestStretch(x, n, b)
				if j != 1 || math.Abs(ncc-1) > 1e-9 || s != m-n/2 {
					t.Fatalf("n=%d: a stretch of centroid 1 routed to %d at %d, NCC %v", n, j, s, ncc)
				}
			}
		}
		if len(b.spreads) > maxSpreadLengths {
			t.Fatalf("after n=%d the bank keeps spreads for %d lengths, at most %d", n, len(b.spreads), maxSpreadLengths)
		}
	}
}

// TestNearestStretchPrunesExactly: the pruned search answers what
// MaxStretchNCC against every centroid answers (the lowest index on ties),
// and both of its bounds hold for every centroid, on windows cut from the
// centroids with noise (where pruning has a best to beat) and on pure noise.
func TestNearestStretchPrunesExactly(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 3))
	m := 360
	walk := func() []float64 { return ZNormalize(randomWalk(rng, m)) }
	centroids := make([][]float64, 8)
	for c := range centroids {
		centroids[c] = walk()
	}
	centroids[5] = append([]float64(nil), centroids[2]...) // a tie: the lower index must win
	centroids[7] = make([]float64, m)                      // flat: matches nothing
	p := NewPlan(m)
	b := p.NewStretchBank(centroids)
	for trial := range 120 {
		n := 2 + rng.IntN(m-2)
		window := make([]float64, n)
		src, from, noise := centroids[rng.IntN(7)], rng.IntN(m), []float64{0, 0.1, 0.5, 3}[trial%4]
		for t := range window {
			window[t] = src[(from+t)%m] + noise*rng.NormFloat64()
		}
		x := p.Spectrum(append(ZNormalize(window), make([]float64, m-n)...))
		wantJ, wantNCC, wantStart := 0, math.Inf(-1), 0
		sp := b.inverseSpreads(n)
		for c := range centroids {
			v, s := p.MaxStretchNCC(x, n, b, c)
			if v > wantNCC {
				wantJ, wantNCC, wantStart = c, v, s
			}
			bounds, _ := p.boundOrder(x, b.weights, sp.maxInv) // also fills p.mag for the grid bound
			if grid, mag := p.stretchGridBound(x, b, c, sp), bounds[c]; grid < v-1e-12 || mag < v-1e-12 {
				t.Fatalf("trial %d n=%d centroid %d: NCC %v above its bounds (grid %v, magnitude %v)", trial, n, c, v, grid, mag)
			}
		}
		j, ncc, start := p.NearestStretch(x, n, b)
		if j != wantJ || ncc != wantNCC || start != wantStart {
			t.Fatalf("trial %d n=%d: pruned search %d %v at %d, every centroid %d %v at %d", trial, n, j, ncc, start, wantJ, wantNCC, wantStart)
		}
		// The runner-up: the largest NCC after the best (lower index on ties).
		runnerWant := Match{Centroid: -1, NCC: math.Inf(-1)}
		for c := range centroids {
			if v, s := p.MaxStretchNCC(x, n, b, c); c != wantJ && (v > runnerWant.NCC || (v == runnerWant.NCC && c < runnerWant.Centroid)) {
				runnerWant = Match{Centroid: c, NCC: v, Shift: s}
			}
		}
		best, runner := p.NearestStretchTwo(x, n, b)
		if best != (Match{Centroid: wantJ, NCC: wantNCC, Shift: wantStart}) || runner != runnerWant {
			t.Fatalf("trial %d n=%d: NearestStretchTwo %+v, %+v; every centroid %d %v, %+v", trial, n, best, runner, wantJ, wantNCC, runnerWant)
		}
		for _, gap := range []float64{-1, 0, 0.05, 0.0847, 0.3} {
			want := runnerWant
			if want.NCC < wantNCC-max(gap, 0) {
				want = Match{Centroid: -1, NCC: math.Inf(-1)}
			}
			if b2, r2 := p.NearestStretchTwoWithin(x, n, b, gap); b2 != best || r2 != want {
				t.Fatalf("trial %d n=%d gap %v: NearestStretchTwoWithin %+v, %+v; want %+v, %+v", trial, n, gap, b2, r2, best, want)
			}
		}
	}
}

// randomWalk is m steps of a Gaussian random walk from 0.
func randomWalk(rng *rand.Rand, m int) []float64 {
	x := make([]float64, m)
	for i := 1; i < m; i++ {
		x[i] = x[i-1] + rng.NormFloat64()
	}
	return x
}
