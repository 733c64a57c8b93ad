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
	top, ffts := p.nearest(x, b, false, 0)
	return top.c[0], top.ncc[0], top.shift[0], ffts
}

// NearestTwo is Nearest's best match and the runner-up (the next largest
// NCC, the lower index on ties; Centroid -1 when there is none), found
// with the same pruning against the runner-up's NCC.
func (p *Plan) NearestTwo(x Spectrum, b *Bank) (best, runner Match) {
	return p.NearestTwoWithin(x, b, math.Inf(1))
}

// NearestTwoWithin is NearestTwo with the runner-up wanted only where its
// NCC is at least the best's less gap (Centroid -1 otherwise; a negative
// gap counts as 0): a centroid that cannot come that close is pruned as
// one that cannot beat the runner-up, so a pattern near one centroid
// alone costs about what Nearest does. Soft routing blends no other
// runner-up.
func (p *Plan) NearestTwoWithin(x Spectrum, b *Bank, gap float64) (best, runner Match) {
	top, _ := p.nearest(x, b, true, gap)
	return top.match(0), top.runnerUp()
}

// Match is a centroid and its NCC with a series, at a shift (or start).
type Match struct {
	Centroid int
	NCC      float64
	Shift    int
}

// ranked keeps the best two (NCC, centroid, shift) seen: the larger NCC
// first, the lower index on ties.
type ranked struct {
	ncc   [2]float64
	c     [2]int
	shift [2]int
	// gap is how far under the best NCC a runner-up is still wanted
	// (never negative: the best itself is always found exactly).
	gap float64
}

func newRanked(gap float64) ranked {
	return ranked{ncc: [2]float64{math.Inf(-1), math.Inf(-1)}, c: [2]int{-1, -1}, gap: max(gap, 0)}
}

func (r *ranked) add(v float64, c, s int) {
	switch {
	case v > r.ncc[0] || (v == r.ncc[0] && c < r.c[0]):
		r.ncc[1], r.c[1], r.shift[1] = r.ncc[0], r.c[0], r.shift[0]
		r.ncc[0], r.c[0], r.shift[0] = v, c, s
	case v > r.ncc[1] || (v == r.ncc[1] && c < r.c[1]):
		r.ncc[1], r.c[1], r.shift[1] = v, c, s
	}
}

// floor is the NCC a centroid must reach to change the answer: the best's,
// or, when two are wanted, the runner-up's or the best's less the gap,
// whichever is higher. Both only rise as the search goes on, so a
// centroid under the floor when tried is under it at the end.
func (r *ranked) floor(two bool) float64 {
	if two {
		return max(r.ncc[1], r.ncc[0]-r.gap)
	}
	return r.ncc[0]
}

// runnerUp is the runner-up when it lies within the gap of the best
// (centroids further off were pruned: another may have been kept in its
// place), else none.
func (r *ranked) runnerUp() Match {
	if r.c[1] < 0 || r.ncc[1] < r.ncc[0]-r.gap {
		return Match{Centroid: -1, NCC: math.Inf(-1)}
	}
	return r.match(1)
}

func (r *ranked) match(i int) Match {
	if r.c[i] < 0 {
		return Match{Centroid: -1, NCC: math.Inf(-1)}
	}
	return Match{Centroid: r.c[i], NCC: r.ncc[i], Shift: r.shift[i]}
}

// nearest is Nearest's search, keeping the runner-up within gap of the
// best too when two is set.
func (p *Plan) nearest(x Spectrum, b *Bank, two bool, gap float64) (top ranked, ffts int) {
	k := len(b.spectra)
	top = newRanked(gap)
	if x.Norm == 0 || k == 0 {
		top.add(0, 0, 0) // every NCC is 0: the first centroid, no runner-up
		return top, 0
	}
	bounds, order := p.boundOrder(x, b.weights, nil)
	for _, c := range order {
		if bounds[c]+boundSlack < top.floor(two) {
			break
		}
		if ffts > 0 && p.refinedBound(x, b, c)+boundSlack < top.floor(two) {
			continue
		}
		v, s := p.MaxNCC(x, b.spectra[c])
		ffts++
		top.add(v, c, s)
	}
	return top, ffts
}

// boundOrder fills p.mag with x's normalised magnitudes and returns every
// centroid's magnitude bound, sum_f weights[c][f] mag[f] (times scale[c]
// when scale is not nil), and the centroids in descending order of it.
func (p *Plan) boundOrder(x Spectrum, weights [][]float64, scale []float64) (bounds []float64, order []int) {
	k := len(weights)
	if cap(p.bounds) < k {
		p.bounds, p.order = make([]float64, k), make([]int, k)
	}
	bounds, order = p.bounds[:k], p.order[:k]
	mag := p.mag
	for f, v := range x.Coeff {
		mag[f] = math.Sqrt(real(v)*real(v)+imag(v)*imag(v)) / x.Norm
	}
	for c, w := range weights {
		var s float64
		for f, v := range w {
			s += v * mag[f]
		}
		if scale != nil {
			s *= scale[c]
		}
		bounds[c] = s
		i := c // insertion sort by bound, descending: k is small
		for ; i > 0 && bounds[order[i-1]] < s; i-- {
			order[i] = order[i-1]
		}
		order[i] = c
	}
	return bounds, order
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
