// Package kshape clusters time series by shape: z-normalisation, the
// shape-based distance SBD (Paparrizos & Gravano, "k-Shape", SIGMOD 2015)
// computed with FFTs, shape extraction and the k-Shape iteration.
package kshape

import (
	"math"

	"github.com/mesp-project/mesp/fft"
)

// ZNormalize returns (x - mean) / std with the population std. A constant
// series (std 0, including all-zero) becomes all zeros, never NaN: it has
// no shape, and its NCC with anything is defined as 0.
func ZNormalize(x []float64) []float64 {
	out := make([]float64, len(x))
	ZNormalizeInto(out, x)
	return out
}

// ZNormalizeInto writes the z-normalised x into dst (len(dst) == len(x)).
func ZNormalizeInto(dst, x []float64) {
	n := float64(len(x))
	var mean float64
	for _, v := range x {
		mean += v
	}
	mean /= n
	var ss float64
	for _, v := range x {
		ss += (v - mean) * (v - mean)
	}
	std := math.Sqrt(ss / n)
	// Relative tolerance: a series of equal large counts can leave rounding
	// noise in ss that is not a shape.
	if std <= 1e-12*math.Max(1, math.Abs(mean)) {
		clear(dst)
		return
	}
	for i, v := range x {
		dst[i] = (v - mean) / std
	}
}

// fastLength is the smallest even 2^a 3^b 5^c >= n: the lengths package
// fft transforms, and smaller than the next power of two for 2*1440-1
// (2880 rather than 4096).
func fastLength(n int) int {
	for l := max(n, 2); ; l++ {
		if fft.Supported(l) {
			return l
		}
	}
}

// Plan holds FFT state for series of one length m. A Plan is not safe for
// concurrent use; give each goroutine its own.
type Plan struct {
	m, n int
	fft  *fft.Real
	buf  []float64
	cc   []float64
	// scratch for on-the-fly row spectra
	row  []float64
	spec []complex128
	// scratch for Nearest
	mag      []float64
	bounds   []float64
	order    []int
	gridStep int          // refinedBound evaluates every gridStep-th shift
	grid     *fft.Complex // of length n/gridStep
	gridBuf  []complex128
}

// NewPlan prepares FFTs for cross-correlating series of length m.
func NewPlan(m int) *Plan {
	n := fastLength(2*m - 1)
	f, err := fft.NewReal(n)
	if err != nil {
		panic(err) // fastLength returns supported lengths only
	}
	step := 1
	for _, g := range []int{8, 6, 5, 4, 3, 2} {
		if n%g == 0 {
			step = g
			break
		}
	}
	grid, err := fft.NewComplex(n / step)
	if err != nil {
		panic(err) // a divisor of a 5-smooth length is 5-smooth
	}
	return &Plan{m: m, n: n, fft: f, buf: make([]float64, n),
		cc:  make([]float64, n),
		row: make([]float64, m), spec: make([]complex128, n/2+1), mag: make([]float64, n/2+1),
		gridStep: step, grid: grid, gridBuf: make([]complex128, n/step)}
}

// Spectrum is a series' zero-padded FFT and its L2 norm, computed once and
// reused against every centroid.
type Spectrum struct {
	Coeff []complex128
	Norm  float64
}

// Spectrum computes x's padded FFT (len(x) must be the plan's m).
func (p *Plan) Spectrum(x []float64) Spectrum { return p.spectrumInto(nil, x) }

// spectrumInto writes x's spectrum into dst (allocated when nil).
func (p *Plan) spectrumInto(dst []complex128, x []float64) Spectrum {
	clear(p.buf)
	copy(p.buf, x)
	var ss float64
	for _, v := range x {
		ss += v * v
	}
	return Spectrum{Coeff: p.fft.Coefficients(dst, p.buf), Norm: math.Sqrt(ss)}
}

// ScratchSpectrum is Spectrum written into the plan's scratch buffer: no
// allocation, valid until the next ScratchSpectrum call on p.
func (p *Plan) ScratchSpectrum(x []float64) Spectrum { return p.spectrumInto(p.spec, x) }

// MaxNCC returns the maximum normalised cross-correlation of x and y over
// all shifts and the shift s at which it occurs: x[t+s] best matches y[t].
// If either series has zero norm, NCC is 0 at shift 0.
func (p *Plan) MaxNCC(x, y Spectrum) (ncc float64, shift int) {
	if x.Norm == 0 || y.Norm == 0 {
		return 0, 0
	}
	p.fft.CrossSequence(p.cc, x.Coeff, y.Coeff)
	// cc[s] for s in 0..m-1 are non-negative lags; cc[n+s] for s in
	// -(m-1)..-1 the negative ones. Ties go to the first lag scanned from
	// -(m-1) upwards, as in tslearn.
	best, bestShift := math.Inf(-1), 0
	for idx := p.n - (p.m - 1); idx < p.n; idx++ {
		if v := p.cc[idx]; v > best {
			best, bestShift = v, idx-p.n
		}
	}
	for idx, v := range p.cc[:p.m] {
		if v > best {
			best, bestShift = v, idx
		}
	}
	return best / float64(p.n) / (x.Norm * y.Norm), bestShift
}

// SBD is the shape-based distance 1 - max NCC, in [0, 2].
func (p *Plan) SBD(x, y Spectrum) (dist float64, shift int) {
	ncc, s := p.MaxNCC(x, y)
	return 1 - ncc, s
}

// SBD computes the shape-based distance of two raw series of equal length
// (a convenience; clustering reuses spectra through a Plan).
func SBD(x, y []float64) (dist float64, shift int) {
	p := NewPlan(len(x))
	return p.SBD(p.Spectrum(x), p.Spectrum(y))
}

// Shift returns y moved by s positions with zeros filled in, so that
// Shift(y, s)[t] = y[t-s]: the copy of y aligned to x when MaxNCC(x, y)
// returned shift s.
func Shift(y []float64, s int) []float64 {
	out := make([]float64, len(y))
	for t := range out {
		if src := t - s; src >= 0 && src < len(y) {
			out[t] = y[src]
		}
	}
	return out
}
