package kshape

import (
	"math"
	"sync"
)

// StretchBank holds centroids prepared for matching windows shorter than
// them against each of their same-length stretches (see MaxStretchNCC):
// the spectra of each centroid laid twice end to end (a stretch may wrap
// past midnight) and prefix sums of values and squares, so that a
// stretch's mean and spread cost O(1).
type StretchBank struct {
	spectra []Spectrum
	sum     [][]float64 // sum[c][i] = sum of the doubled centroid c's first i values
	sumSq   [][]float64
	m       int

	// Each stretch's inverse spread depends only on the window's length:
	// kept per length for the few lengths a deployment sends, so that a
	// route's scan over starts is one multiply per start.
	mu      sync.RWMutex
	spreads map[int][][]float64
}

// maxSpreadLengths bounds the lengths whose spreads are kept (8 centroids of
// a day: 92 KB each), whatever lengths clients send.
const maxSpreadLengths = 8

// NewStretchBank prepares centroids (each of the plan's length m).
// The bank is read-only afterwards and may be shared by goroutines.
func (p *Plan) NewStretchBank(centroids [][]float64) *StretchBank {
	if p.n < 2*p.m {
		panic("kshape: plan too short for doubled centroids") // fastLength(2m-1) is even, so >= 2m
	}
	b := &StretchBank{m: p.m, spreads: map[int][][]float64{}}
	for _, c := range centroids {
		twice := append(append(make([]float64, 0, 2*len(c)), c...), c...)
		s, s2 := make([]float64, len(twice)+1), make([]float64, len(twice)+1)
		for i, v := range twice {
			s[i+1], s2[i+1] = s[i]+v, s2[i]+v*v
		}
		b.spectra = append(b.spectra, p.spectrumInto(nil, twice))
		b.sum, b.sumSq = append(b.sum, s), append(b.sumSq, s2)
	}
	return b
}

// Len is the number of centroids.
func (b *StretchBank) Len() int { return len(b.spectra) }

// inverseSpreads returns, for n-minute windows, 1/sqrt(sum of squared
// deviations) of every centroid's stretch at every start (0 for a flat
// stretch, which matches nothing), computed once per length.
func (b *StretchBank) inverseSpreads(n int) [][]float64 {
	b.mu.RLock()
	inv, ok := b.spreads[n]
	b.mu.RUnlock()
	if ok {
		return inv
	}
	inv = make([][]float64, len(b.spectra))
	fn := float64(n)
	for c := range inv {
		sum, sumSq := b.sum[c], b.sumSq[c]
		row := make([]float64, b.m)
		for s := range row {
			mean := (sum[s+n] - sum[s]) / fn
			if ss := sumSq[s+n] - sumSq[s] - fn*mean*mean; ss > 1e-9*fn {
				row[s] = 1 / math.Sqrt(ss)
			}
		}
		inv[c] = row
	}
	b.mu.Lock()
	if len(b.spreads) >= maxSpreadLengths {
		clear(b.spreads) // lengths still in use come back on their next route
	}
	b.spreads[n] = inv
	b.mu.Unlock()
	return inv
}

// MaxStretchNCC is the largest NCC between a window of n < m minutes and
// any z-normalised n-minute stretch of centroid c, starting at any minute s
// of the day and wrapping past its end (a daily pattern's evening leads
// into its morning), and that start s. x is the spectrum of the
// z-normalised window zero-padded to m.
//
// It is the honest distance for a partial day: SBD's zero-padded shift
// search would compare the window with the whole centroid, whose norm the
// window can only partly match, so partial and full-day distances would
// sit on different scales. Because the window has mean zero, the dot
// product with a stretch needs no centring of the stretch; every start
// comes from one cross-correlation (the doubled centroid with the window:
// s+t < 2m <= the FFT length, so nothing wraps), each stretch's spread
// from the prefix sums, once per window length (inverseSpreads). A flat
// stretch (no spread) matches nothing: NCC 0.
func (p *Plan) MaxStretchNCC(x Spectrum, n int, b *StretchBank, c int) (ncc float64, start int) {
	if x.Norm == 0 || n < 2 || n >= p.m {
		return 0, 0
	}
	return p.maxStretchNCC(x, b, c, b.inverseSpreads(n)[c])
}

// maxStretchNCC is MaxStretchNCC with centroid c's inverse spreads for the
// window's length.
func (p *Plan) maxStretchNCC(x Spectrum, b *StretchBank, c int, inv []float64) (ncc float64, start int) {
	cs := b.spectra[c]
	if cs.Norm == 0 {
		return 0, 0
	}
	// cc[s] = sum_t c[t+s] x[t]: the centroid's spectrum against the window's.
	p.fft.CrossSequence(p.cc, cs.Coeff, x.Coeff)
	best, bestStart := 0.0, 0
	for s, w := range inv {
		if v := p.cc[s] * w; v > best {
			best, bestStart = v, s
		}
	}
	return best / (float64(p.n) * x.Norm), bestStart
}

// NearestStretch returns the centroid whose best stretch has the largest
// NCC with the window (the lowest index on ties), that NCC and the
// stretch's start.
func (p *Plan) NearestStretch(x Spectrum, n int, b *StretchBank) (j int, ncc float64, start int) {
	best, bj, bs := math.Inf(-1), 0, 0
	var inv [][]float64
	if x.Norm != 0 && n >= 2 && n < p.m {
		inv = b.inverseSpreads(n)
	}
	for c := range b.spectra {
		v, s := 0.0, 0
		if inv != nil {
			v, s = p.maxStretchNCC(x, b, c, inv[c])
		}
		if v > best {
			best, bj, bs = v, c, s
		}
	}
	return bj, best, bs
}
