package kshape

import "math"

// Bank is a set of centroids prepared for nearest-centroid search: their
// spectra, and their weighted spectral magnitudes for the pruning bound.
type Bank struct {
	spectra []Spectrum
	weights [][]float64 // w_f |C_f| / (n ||c||), w = 1 at f = 0 and n/2, else 2
	rise    [][]float64 // weights times the most frequency f can move between grid shifts
	// conj(C_f) w_f / (n ||c||): the cross-spectrum with x is one product
	// per frequency in refinedBound
	crossWeights [][]complex128
}

// NewBank prepares centroids (each of the plan's length m) for Nearest.
// The Bank is read-only afterwards and may be shared by goroutines.
func (p *Plan) NewBank(centroids [][]float64) *Bank {
	b := &Bank{}
	for _, c := range centroids {
		s := p.Spectrum(c)
		cw := make([]complex128, len(s.Coeff))
		w := make([]float64, len(s.Coeff))
		rise := make([]float64, len(s.Coeff))
		if s.Norm > 0 {
			for f, v := range s.Coeff {
				scale := 2 / (float64(p.n) * s.Norm)
				if f == 0 || f == len(cw)-1 {
					scale /= 2
				}
				cw[f] = complex(real(v)*scale, -imag(v)*scale)
				w[f] = math.Hypot(real(cw[f]), imag(cw[f]))
				// |e^{2 pi i f d/n} - 1| = 2 |sin(pi f d/n)| for |d| <= step/2
				rise[f] = w[f] * 2 * math.Sin(math.Min(math.Pi/2, math.Pi*float64(f*p.gridStep)/float64(2*p.n)))
			}
		}
		b.spectra = append(b.spectra, s)
		b.weights = append(b.weights, w)
		b.rise = append(b.rise, rise)
		b.crossWeights = append(b.crossWeights, cw)
	}
	return b
}

// Len is the number of centroids.
func (b *Bank) Len() int { return len(b.spectra) }

// boundSlack absorbs rounding between a bound and the NCC computed by the
// inverse FFT; it only makes pruning more cautious.
const boundSlack = 1e-9

// Nearest returns the centroid with the largest NCC to x (the smallest
// SBD; the lowest index on ties), that NCC and its shift, exactly as
// MaxNCC against every centroid would, and how many full inverse FFTs it
// ran.
//
// It runs fewer, using two upper bounds on a centroid's NCC. The
// cross-correlation at any shift is a sum over frequencies of
// X_f conj(C_f) e^{...}, so no shift can beat sum_f |X_f| |C_f| / (n ||x||
// ||c||): centroids are tried in order of that bound, and the search stops
// at the first whose bound is below the best NCC found. A centroid that
// passes this test gets the grid bound (refinedBound, a fifth of an exact
// evaluation) before an exact one.
func (p *Plan) Nearest(x Spectrum, b *Bank) (j int, ncc float64, shift, ffts int) {
	k := len(b.spectra)
	if x.Norm == 0 || k == 0 {
		return 0, 0, 0, 0
	}
	if cap(p.bounds) < k {
		p.bounds, p.order = make([]float64, k), make([]int, k)
	}
	bounds, order := p.bounds[:k], p.order[:k]
	mag := p.mag
	for f, v := range x.Coeff {
		mag[f] = math.Sqrt(real(v)*real(v)+imag(v)*imag(v)) / x.Norm
	}
	for c, w := range b.weights {
		var s float64
		for f, v := range w {
			s += v * mag[f]
		}
		bounds[c] = s
		// insertion sort by bound, descending: k is small
		i := c
		for ; i > 0 && bounds[order[i-1]] < s; i-- {
			order[i] = order[i-1]
		}
		order[i] = c
	}
	best, bj, bs := math.Inf(-1), 0, 0
	for _, c := range order {
		if bounds[c]+boundSlack < best {
			break
		}
		if ffts > 0 && p.refinedBound(x, b, c)+boundSlack < best {
			continue
		}
		v, s := p.MaxNCC(x, b.spectra[c])
		ffts++
		if v > best || (v == best && c < bj) {
			best, bj, bs = v, c, s
		}
	}
	return bj, best, bs, ffts
}

// refinedBound is an upper bound on x's NCC with centroid c, tighter than
// the magnitude bound: the cross-correlation evaluated exactly at every
// gridStep-th shift (the cross-spectrum folded to n/gridStep bins and one
// small inverse FFT), plus the most it can rise between grid points, which
// frequency f limits to |P_f| |e^{2 pi i f d/n} - 1| for |d| <= gridStep/2.
// Daily patterns keep most of their energy in the lowest frequencies,
// where that rise is small. p.mag must hold x's normalised magnitudes.
func (p *Plan) refinedBound(x Spectrum, b *Bank, c int) float64 {
	cs := b.spectra[c]
	if cs.Norm == 0 {
		return 0
	}
	q := p.gridBuf
	clear(q)
	cw := b.crossWeights[c]
	for lo := 0; lo < len(x.Coeff); lo += len(q) {
		hi := min(lo+len(q), len(x.Coeff))
		xs, ws := x.Coeff[lo:hi], cw[lo:hi]
		for r, xv := range xs {
			q[r] += xv * ws[r]
		}
	}
	best := math.Inf(-1)
	for _, v := range p.grid.Inverse(q) {
		best = max(best, real(v))
	}
	var rise float64
	for f, w := range b.rise[c] {
		rise += w * p.mag[f]
	}
	return best/x.Norm + rise
}
