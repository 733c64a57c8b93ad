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
	walk := func() []float64 {
		x := make([]float64, m)
		for i := 1; i < m; i++ {
			x[i] = x[i-1] + rng.NormFloat64()
		}
		return x
	}
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
