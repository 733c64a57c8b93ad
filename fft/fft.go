// Package fft computes discrete Fourier transforms of real sequences whose
// length is even and has no prime factor above 5 (2880 for SBD on daily
// series). It exists because SBD is MESP's inner loop: routing one pattern
// and every k-Shape assignment are a handful of these transforms, and a
// self-sorting (Stockham) mixed-radix transform with precomputed twiddles
// runs several times faster than gonum's FFTPACK port at these sizes.
//
// A real sequence of length n is transformed as a complex one of length
// n/2 (even samples real, odd samples imaginary) plus an O(n) split, the
// standard packing trick.
package fft

import (
	"fmt"
	"math"
)

// Real holds the plan for real sequences of one length. It keeps scratch
// buffers: a Real is not safe for concurrent use; give each goroutine its
// own.
type Real struct {
	n     int
	half  *complexPlan
	twist []complex128 // e^{-2 pi i k / n}, k = 0..n/2
	z, y  []complex128 // scratch of length n/2
}

// Supported reports whether NewReal accepts length n: even, positive, and
// 5-smooth.
func Supported(n int) bool {
	if n < 2 || n%2 != 0 {
		return false
	}
	for _, p := range []int{2, 3, 5} {
		for n%p == 0 {
			n /= p
		}
	}
	return n == 1
}

// NewReal plans transforms of real sequences of length n.
func NewReal(n int) (*Real, error) {
	if !Supported(n) {
		return nil, fmt.Errorf("fft: length %d is not an even product of 2, 3 and 5", n)
	}
	m := n / 2
	r := &Real{n: n, half: newComplexPlan(m), twist: make([]complex128, m+1),
		z: make([]complex128, m), y: make([]complex128, m)}
	for k := range r.twist {
		r.twist[k] = root(k, n)
	}
	return r, nil
}

// Len is the sequence length.
func (r *Real) Len() int { return r.n }

// Coefficients writes X_k = sum_t x_t e^{-2 pi i k t / n} for k = 0..n/2
// into dst (allocated when nil or short) and returns it; len(x) must be n.
func (r *Real) Coefficients(dst []complex128, x []float64) []complex128 {
	if len(x) != r.n {
		panic(fmt.Sprintf("fft: sequence of length %d, plan for %d", len(x), r.n))
	}
	m := r.n / 2
	if len(dst) < m+1 {
		dst = make([]complex128, m+1)
	}
	dst = dst[:m+1]
	z := r.z
	for t := range z {
		z[t] = complex(x[2*t], x[2*t+1])
	}
	zk := r.half.forward(z, r.y)
	// Split Z into the spectra of the even (E) and odd (O) samples:
	// X_k = E_k + W^k O_k with E_k = (Z_k + conj Z_{m-k}) / 2 and
	// O_k = (Z_k - conj Z_{m-k}) / 2i. Indices k and m-k read the same
	// pair: one pass over the pairs.
	zk, twist := zk[:m], r.twist[:m+1]
	for k := 1; 2*k <= m; k++ {
		a, b := zk[k], zk[m-k]
		dst[k] = forwardTerm(a, b, twist[k])
		dst[m-k] = forwardTerm(b, a, twist[m-k])
	}
	// k = 0 and k = m both read Z_0 (Z is periodic in m).
	z0 := zk[0]
	dst[0] = complex(real(z0)+imag(z0), 0)
	dst[m] = complex(real(z0)-imag(z0), 0)
	return dst
}

// Sequence writes the unnormalised inverse sum_k X_k e^{2 pi i k t / n}
// over the Hermitian extension of coeff (n/2+1 values, as Coefficients
// returns) into dst (allocated when nil or short): Sequence(Coefficients(x))
// is n*x. The imaginary parts of X_0 and X_{n/2} are ignored.
func (r *Real) Sequence(dst []float64, coeff []complex128) []float64 {
	return r.inverse(dst, coeff, nil)
}

// CrossSequence is Sequence of the product x_k conj(y_k) (the circular
// cross-correlation of the two real sequences with spectra x and y),
// without storing the product.
func (r *Real) CrossSequence(dst []float64, x, y []complex128) []float64 {
	if len(y) != len(x) {
		panic(fmt.Sprintf("fft: %d and %d coefficients", len(x), len(y)))
	}
	return r.inverse(dst, x, y)
}

// inverse is Sequence of coeff, or of coeff times conj(y) when y is not
// nil.
func (r *Real) inverse(dst []float64, coeff, y []complex128) []float64 {
	m := r.n / 2
	if len(coeff) != m+1 {
		panic(fmt.Sprintf("fft: %d coefficients, plan for %d", len(coeff), m+1))
	}
	if len(dst) < r.n {
		dst = make([]float64, r.n)
	}
	dst = dst[:r.n]
	at := func(k int) complex128 {
		if y == nil {
			return coeff[k]
		}
		v := y[k]
		return coeff[k] * complex(real(v), -imag(v))
	}
	// Rebuild Z_k = 2(E_k + i O_k) from X_k and X_{m-k}, conjugated so the
	// forward transform computes the inverse: IDFT(Z) = conj(DFT(conj Z)).
	// Indices k and m-k read the same pair: one pass over the pairs.
	z, twist := r.z[:m], r.twist[:m+1]
	for k := 1; 2*k <= m; k++ {
		a, b := at(k), at(m-k)
		z[k] = inverseTerm(a, b, twist[k])
		z[m-k] = inverseTerm(b, a, twist[m-k])
	}
	if m > 0 {
		// k = 0 reads X_0 and X_m; both are real for a real sequence.
		a, b := real(at(0)), real(at(m))
		z[0] = complex(a+b, -(a - b))
	}
	out := r.half.forward(z, r.y)
	for t, v := range out {
		dst[2*t] = real(v)
		dst[2*t+1] = -imag(v)
	}
	return dst
}

// forwardTerm is E + W^k O for the pair Z_k = a, Z_{m-k} = b.
func forwardTerm(a, b, w complex128) complex128 {
	b = complex(real(b), -imag(b))
	e := scale(a+b, 0.5)
	d := a - b
	o := complex(imag(d)*0.5, -real(d)*0.5) // (a - b) / 2i
	return e + w*o
}

// inverseTerm is conj(E + i O) for the pair X_k = a, X_{m-k} = b.
func inverseTerm(a, b, w complex128) complex128 {
	b = complex(real(b), -imag(b))
	e := a + b
	o := (a - b) * complex(real(w), -imag(w))
	return complex(real(e)-imag(o), -(imag(e) + real(o)))
}

// root is e^{-2 pi i k / n}, computed from the reduced angle for accuracy.
func root(k, n int) complex128 {
	s, c := math.Sincos(-2 * math.Pi * float64(k%n) / float64(n))
	return complex(c, s)
}

// Complex holds the plan for complex sequences of one 5-smooth length; like
// Real it keeps scratch and is not safe for concurrent use.
type Complex struct {
	plan *complexPlan
	y    []complex128
}

// NewComplex plans transforms of complex sequences of length n.
func NewComplex(n int) (*Complex, error) {
	if n < 1 || (n > 1 && !Supported(2*n)) {
		return nil, fmt.Errorf("fft: length %d is not a product of 2, 3 and 5", n)
	}
	return &Complex{plan: newComplexPlan(n), y: make([]complex128, n)}, nil
}

// Inverse returns the unnormalised inverse DFT sum_k x_k e^{2 pi i k t / n};
// x is overwritten, and the result (x or the plan's scratch) is valid until
// the next call.
func (c *Complex) Inverse(x []complex128) []complex128 {
	if len(x) != c.plan.n {
		panic(fmt.Sprintf("fft: sequence of length %d, plan for %d", len(x), c.plan.n))
	}
	for i, v := range x {
		x[i] = complex(real(v), -imag(v))
	}
	out := c.plan.forward(x, c.y)
	for i, v := range out {
		out[i] = complex(real(v), -imag(v))
	}
	return out
}
