package fft

import (
	"math"
	"math/cmplx"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/dsp/fourier"
)

// naiveDFT is the O(n^2) definition.
func naiveDFT(x []float64) []complex128 {
	n := len(x)
	out := make([]complex128, n/2+1)
	for k := range out {
		var s complex128
		for t, v := range x {
			s += complex(v, 0) * root(k*t, n)
		}
		out[k] = s
	}
	return out
}

func randomSeries(rng *rand.Rand, n int) []float64 {
	x := make([]float64, n)
	for i := range x {
		x[i] = rng.NormFloat64()
	}
	return x
}

func TestCoefficientsMatchDefinition(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{2, 4, 6, 8, 10, 12, 18, 30, 40, 50, 90, 250, 360, 480, 2880} {
		r, err := NewReal(n)
		if err != nil {
			t.Fatal(err)
		}
		x := randomSeries(rng, n)
		got := r.Coefficients(nil, x)
		want := naiveDFT(x)
		for k := range want {
			if d := cmplx.Abs(got[k] - want[k]); d > 1e-9*float64(n) {
				t.Fatalf("n=%d: X_%d = %v, want %v (|diff| %g)", n, k, got[k], want[k], d)
			}
		}
	}
}

func TestSequenceInvertsCoefficients(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{2, 6, 20, 96, 150, 2880} {
		r, _ := NewReal(n)
		x := randomSeries(rng, n)
		back := r.Sequence(nil, r.Coefficients(nil, x))
		for i := range x {
			if d := math.Abs(back[i]/float64(n) - x[i]); d > 1e-12 {
				t.Fatalf("n=%d: x[%d] = %v after round trip, want %v", n, i, back[i]/float64(n), x[i])
			}
		}
	}
}

// TestSequenceMatchesGonum checks the inverse on a spectrum that is not one
// of a real series' own (a product of two spectra, as in cross-correlation),
// given as the product (Sequence) or as its two factors (CrossSequence).
func TestSequenceMatchesGonum(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{12, 2880} {
		r, _ := NewReal(n)
		g := fourier.NewFFT(n)
		a, b := g.Coefficients(nil, randomSeries(rng, n)), g.Coefficients(nil, randomSeries(rng, n))
		prod := make([]complex128, len(a))
		for i := range a {
			prod[i] = a[i] * cmplx.Conj(b[i])
		}
		want := g.Sequence(nil, prod)
		for name, got := range map[string][]float64{"Sequence": r.Sequence(nil, prod), "CrossSequence": r.CrossSequence(nil, a, b)} {
			for i := range want {
				if d := math.Abs(got[i] - want[i]); d > 1e-9*math.Max(1, math.Abs(want[i])) {
					t.Fatalf("%s, n=%d: cc[%d] = %v, gonum %v", name, n, i, got[i], want[i])
				}
			}
		}
	}
}

func TestNewRealRejectsUnsupportedLengths(t *testing.T) {
	for _, n := range []int{0, 1, 3, 7, 14, 2879, -4} {
		if _, err := NewReal(n); err == nil {
			t.Errorf("NewReal(%d) succeeded", n)
		}
	}
}

func BenchmarkCoefficients2880(b *testing.B) {
	r, _ := NewReal(2880)
	x := randomSeries(rand.New(rand.NewPCG(1, 1)), 2880)
	dst := make([]complex128, 1441)
	for b.Loop() {
		r.Coefficients(dst, x)
	}
}

func BenchmarkSequence2880(b *testing.B) {
	r, _ := NewReal(2880)
	c := r.Coefficients(nil, randomSeries(rand.New(rand.NewPCG(1, 1)), 2880))
	dst := make([]float64, 2880)
	for b.Loop() {
		r.Sequence(dst, c)
	}
}

// The gonum peers, side by side (go test -bench . ./fft).
func BenchmarkGonumCoefficients2880(b *testing.B) {
	g := fourier.NewFFT(2880)
	x := randomSeries(rand.New(rand.NewPCG(1, 1)), 2880)
	dst := make([]complex128, 1441)
	for b.Loop() {
		g.Coefficients(dst, x)
	}
}

func BenchmarkGonumSequence2880(b *testing.B) {
	g := fourier.NewFFT(2880)
	c := g.Coefficients(nil, randomSeries(rand.New(rand.NewPCG(1, 1)), 2880))
	dst := make([]float64, 2880)
	for b.Loop() {
		g.Sequence(dst, c)
	}
}

func TestComplexInverseMatchesDefinition(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, n := range []int{1, 2, 3, 5, 12, 45, 360} {
		c, err := NewComplex(n)
		if err != nil {
			t.Fatal(err)
		}
		x := make([]complex128, n)
		for i := range x {
			x[i] = complex(rng.NormFloat64(), rng.NormFloat64())
		}
		want := make([]complex128, n)
		for tt := range want {
			for k, v := range x {
				want[tt] += v * cmplx.Conj(root(k*tt, n))
			}
		}
		got := c.Inverse(append([]complex128(nil), x...))
		for i := range want {
			if d := cmplx.Abs(got[i] - want[i]); d > 1e-9*float64(n) {
				t.Fatalf("n=%d: [%d] = %v, want %v", n, i, got[i], want[i])
			}
		}
	}
	if _, err := NewComplex(7); err == nil {
		t.Error("NewComplex(7) succeeded")
	}
}
