package kshape

import (
	"math"
	"sync"
)

// StretchBank holds centroids prepared for matching windows shorter than
// them against each of their same-length stretches (see MaxStretchNCC):
// the spectra of each centroid laid twice end to end (a stretch may wrap
// past midnight) and prefix sums of values and squares, so that a
// stretch's mean and spread cost O(1), and the weighted spectra that bound
// a centroid's best NCC before its exact evaluation (NearestStretch).
type StretchBank struct {
	spectra []Spectrum
	sum     [][]float64 // sum[c][i] = sum of the doubled centroid c's first i values
	sumSq   [][]float64
	m, step int
	// w_f C_f / n (w = 1 at f = 0 and n/2, else 2): the cross-correlation
	// at start s is Re sum_f cross_f conj(X_f) e^{2 pi i f s/n}
	cross [][]complex128
	// |cross_f|, and |cross_f| times the most frequency f can move between
	// grid starts (as in Bank)
	weights, rise [][]float64

	// Each stretch's inverse spread depends only on the window's length:
	// kept per length for the few lengths a deployment sends, so that a
	// route's scan over starts is one multiply per start.
	mu      sync.RWMutex
	spreads map[int]*stretchSpreads
}

// stretchSpreads are a window length's inverse stretch spreads per
// centroid and start, their maximum per grid cell (the starts nearest each
// grid start) and overall.
type stretchSpreads struct {
	inv, cellMax [][]float64
	maxInv       []float64
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
	b := &StretchBank{m: p.m, step: p.gridStep, spreads: map[int]*stretchSpreads{}}
	for _, c := range centroids {
		twice := append(append(make([]float64, 0, 2*len(c)), c...), c...)
		s, s2 := make([]float64, len(twice)+1), make([]float64, len(twice)+1)
		for i, v := range twice {
			s[i+1], s2[i+1] = s[i]+v, s2[i]+v*v
		}
		spec := p.spectrumInto(nil, twice)
		cross := make([]complex128, len(spec.Coeff))
		w, rise := make([]float64, len(cross)), make([]float64, len(cross))
		for f, v := range spec.Coeff {
			scale := 2 / float64(p.n)
			if f == 0 || f == len(cross)-1 {
				scale /= 2
			}
			cross[f] = complex(real(v)*scale, imag(v)*scale)
			w[f] = math.Hypot(real(cross[f]), imag(cross[f]))
			rise[f] = w[f] * 2 * math.Sin(math.Min(math.Pi/2, math.Pi*float64(f*p.gridStep)/float64(2*p.n)))
		}
		b.spectra = append(b.spectra, spec)
		b.sum, b.sumSq = append(b.sum, s), append(b.sumSq, s2)
		b.cross, b.weights, b.rise = append(b.cross, cross), append(b.weights, w), append(b.rise, rise)
	}
	return b
}

// Len is the number of centroids.
func (b *StretchBank) Len() int { return len(b.spectra) }

// inverseSpreads returns, for n-minute windows, 1/sqrt(sum of squared
// deviations) of every centroid's stretch at every start (0 for a flat
// stretch, which matches nothing), computed once per length.
func (b *StretchBank) inverseSpreads(n int) *stretchSpreads {
	b.mu.RLock()
	sp, ok := b.spreads[n]
	b.mu.RUnlock()
	if ok {
		return sp
	}
	k := len(b.spectra)
	sp = &stretchSpreads{inv: make([][]float64, k), cellMax: make([][]float64, k), maxInv: make([]float64, k)}
	fn := float64(n)
	for c := range k {
		sum, sumSq := b.sum[c], b.sumSq[c]
		row := make([]float64, b.m)
		// start s is within step/2 of grid start g*step, g = round(s/step)
		cells := make([]float64, (b.m-1+b.step/2)/b.step+1)
		for s := range row {
			mean := (sum[s+n] - sum[s]) / fn
			if ss := sumSq[s+n] - sumSq[s] - fn*mean*mean; ss > 1e-9*fn {
				row[s] = 1 / math.Sqrt(ss)
			}
			g := (s + b.step/2) / b.step
			cells[g] = max(cells[g], row[s])
			sp.maxInv[c] = max(sp.maxInv[c], row[s])
		}
		sp.inv[c], sp.cellMax[c] = row, cells
	}
	b.mu.Lock()
	if len(b.spreads) >= maxSpreadLengths {
		clear(b.spreads) // lengths still in use come back on their next route
	}
	b.spreads[n] = sp
	b.mu.Unlock()
	return sp
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
	return p.maxStretchNCC(x, b, c, b.inverseSpreads(n).inv[c])
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
// stretch's start, exactly as MaxStretchNCC against every centroid would.
//
// As Nearest, it skips centroids that cannot win: no start's
// cross-correlation exceeds sum_f |cross_f| |X_f|, and no stretch's inverse
// spread the largest for the window's length, so centroids are tried in
// order of that bound's product and the search stops at the first below
// the best NCC found; one that passes gets the grid bound (the
// cross-correlation at every step-th start from one small inverse FFT,
// plus the most it can rise between grid starts, times the largest inverse
// spread near each) before an exact evaluation.
func (p *Plan) NearestStretch(x Spectrum, n int, b *StretchBank) (j int, ncc float64, start int) {
	top := p.nearestStretch(x, n, b, false, 0)
	return top.c[0], top.ncc[0], top.shift[0]
}

// NearestStretchTwo is NearestStretch's best match and the runner-up
// (Centroid -1 when there is none), as NearestTwo.
func (p *Plan) NearestStretchTwo(x Spectrum, n int, b *StretchBank) (best, runner Match) {
	return p.NearestStretchTwoWithin(x, n, b, math.Inf(1))
}

// NearestStretchTwoWithin is NearestStretchTwo with the runner-up wanted
// only within gap of the best NCC, as NearestTwoWithin.
func (p *Plan) NearestStretchTwoWithin(x Spectrum, n int, b *StretchBank, gap float64) (best, runner Match) {
	top := p.nearestStretch(x, n, b, true, gap)
	return top.match(0), top.runnerUp()
}

func (p *Plan) nearestStretch(x Spectrum, n int, b *StretchBank, two bool, gap float64) ranked {
	k := len(b.spectra)
	top := newRanked(gap)
	if x.Norm == 0 || n < 2 || n >= p.m || k == 0 {
		top.add(0, 0, 0) // every NCC is 0: the first centroid, no runner-up
		return top
	}
	sp := b.inverseSpreads(n)
	bounds, order := p.boundOrder(x, b.weights, sp.maxInv)
	exact := 0
	for _, c := range order {
		if bounds[c]+boundSlack < top.floor(two) {
			break
		}
		if exact > 0 && p.stretchGridBound(x, b, c, sp)+boundSlack < top.floor(two) {
			continue
		}
		v, s := p.maxStretchNCC(x, b, c, sp.inv[c])
		exact++
		top.add(v, c, s)
	}
	return top
}

// stretchGridBound bounds centroid c's best stretch NCC: the
// cross-correlation at every step-th start (the cross-spectrum folded to
// n/step bins and one small inverse FFT) plus the most it can rise between
// grid starts, times the largest inverse spread of the starts nearest
// each grid start. p.mag must hold x's normalised magnitudes.
func (p *Plan) stretchGridBound(x Spectrum, b *StretchBank, c int, sp *stretchSpreads) float64 {
	q := p.gridBuf
	clear(q)
	cross := b.cross[c]
	for lo := 0; lo < len(x.Coeff); lo += len(q) {
		hi := min(lo+len(q), len(x.Coeff))
		for r, xv := range x.Coeff[lo:hi] {
			q[r] += cross[lo+r] * complex(real(xv), -imag(xv))
		}
	}
	var rise float64
	for f, w := range b.rise[c] {
		rise += w * p.mag[f]
	}
	at := p.grid.Inverse(q)
	best := 0.0
	for g, cell := range sp.cellMax[c] {
		if v := (real(at[g])/x.Norm + rise) * cell; v > best {
			best = v
		}
	}
	return best
}
