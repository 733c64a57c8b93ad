package kshape

import "math"

// StretchBank holds centroids prepared for matching windows shorter than
// them against each of their same-length stretches (see MaxStretchNCC):
// the spectra of each centroid laid twice end to end (a stretch may wrap
// past midnight) and prefix sums of values and squares, so that a
// stretch's mean and spread cost O(1).
type StretchBank struct {
	spectra []Spectrum
	sum     [][]float64 // sum[c][i] = sum of the doubled centroid c's first i values
	sumSq   [][]float64
}

// NewStretchBank prepares centroids (each of the plan's length m).
// The bank is read-only afterwards and may be shared by goroutines.
func (p *Plan) NewStretchBank(centroids [][]float64) *StretchBank {
	if p.n < 2*p.m {
		panic("kshape: plan too short for doubled centroids") // fastLength(2m-1) is even, so >= 2m
	}
	b := &StretchBank{}
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
// from the prefix sums. A flat stretch (no spread) matches nothing: NCC 0.
func (p *Plan) MaxStretchNCC(x Spectrum, n int, b *StretchBank, c int) (ncc float64, start int) {
	cs := b.spectra[c]
	if x.Norm == 0 || cs.Norm == 0 || n < 2 || n >= p.m {
		return 0, 0
	}
	// cc[s] = sum_t c[t+s] x[t]: the centroid's spectrum against the window's.
	p.fft.CrossSequence(p.cc, cs.Coeff, x.Coeff)
	sum, sumSq := b.sum[c], b.sumSq[c]
	best, bestStart := 0.0, 0
	fn := float64(n)
	for s := range p.m {
		mean := (sum[s+n] - sum[s]) / fn
		ss := sumSq[s+n] - sumSq[s] - fn*mean*mean
		if ss <= 1e-9*fn {
			continue
		}
		if v := p.cc[s] / float64(p.n) / (x.Norm * math.Sqrt(ss)); v > best {
			best, bestStart = v, s
		}
	}
	return best, bestStart
}

// NearestStretch returns the centroid whose best stretch has the largest
// NCC with the window (the lowest index on ties), that NCC and the
// stretch's start.
func (p *Plan) NearestStretch(x Spectrum, n int, b *StretchBank) (j int, ncc float64, start int) {
	best, bj, bs := math.Inf(-1), 0, 0
	for c := range b.spectra {
		if v, s := p.MaxStretchNCC(x, n, b, c); v > best {
			best, bj, bs = v, c, s
		}
	}
	return bj, best, bs
}
