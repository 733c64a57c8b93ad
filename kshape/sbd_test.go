package kshape

import (
	"math"
	"math/rand/v2"
	"testing"
)

// bruteNCC is the O(m^2) definition: max over shifts s of
// sum_t x[t+s] y[t] / (|x| |y|).
func bruteNCC(x, y []float64) (float64, int) {
	m := len(x)
	var nx, ny float64
	for i := range x {
		nx += x[i] * x[i]
		ny += y[i] * y[i]
	}
	if nx == 0 || ny == 0 {
		return 0, 0
	}
	best, bs := math.Inf(-1), 0
	for s := -(m - 1); s < m; s++ {
		var c float64
		for t := range m {
			if t+s >= 0 && t+s < m {
				c += x[t+s] * y[t]
			}
		}
		if c > best {
			best, bs = c, s
		}
	}
	return best / math.Sqrt(nx*ny), bs
}

func TestSBDMatchesBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, m := range []int{1, 2, 7, 60, 257, 1440} {
		for trial := 0; trial < 5; trial++ {
			x, y := make([]float64, m), make([]float64, m)
			for i := range x {
				x[i], y[i] = rng.NormFloat64(), rng.NormFloat64()*3+1
			}
			want, wantShift := bruteNCC(x, y)
			got, shift := SBD(x, y)
			if math.Abs((1-got)-want) > 1e-9 {
				t.Fatalf("m=%d: SBD %v, brute force 1-NCC %v", m, got, 1-want)
			}
			if shift != wantShift {
				t.Fatalf("m=%d: shift %d, brute force %d", m, shift, wantShift)
			}
		}
	}
}

func TestSBDShiftInvariant(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	m := 1440
	x := make([]float64, m)
	for i := 300; i < 500; i++ { // a bump with zero padding around it
		x[i] = math.Sin(float64(i-300)/200*math.Pi) * (1 + 0.1*rng.Float64())
	}
	for _, s := range []int{-250, -17, 0, 1, 90, 600} {
		y := Shift(x, s)
		d, shift := SBD(y, x)
		if d > 1e-9 {
			t.Errorf("shift %d: SBD %v, want 0", s, d)
		}
		if shift != s {
			t.Errorf("shift %d: found %d", s, shift)
		}
	}
}

func TestZNormalizeConstantIsZeroNotNaN(t *testing.T) {
	cases := []struct {
		name string
		x    []float64
	}{
		{"all zero", make([]float64, 1440)},
		{"constant", []float64{5, 5, 5, 5}},
		{"large constant", []float64{1e12, 1e12, 1e12}},
	}
	for _, tc := range cases {
		z := ZNormalize(tc.x)
		for i, v := range z {
			if v != 0 {
				t.Fatalf("%s: z[%d] = %v, want 0", tc.name, i, v)
			}
		}
	}
	// NCC with a zero series is defined as 0: SBD 1.
	if d, _ := SBD(make([]float64, 8), []float64{1, 2, 3, 4, 5, 6, 7, 8}); d != 1 {
		t.Fatalf("SBD with a zero series = %v, want 1", d)
	}
	z := ZNormalize([]float64{1, 2, 3, 4})
	var mean, ss float64
	for _, v := range z {
		mean += v
		ss += v * v
	}
	if math.Abs(mean) > 1e-12 || math.Abs(ss/4-1) > 1e-12 {
		t.Fatalf("z-normalised mean %v, var %v", mean/4, ss/4)
	}
}

func TestFastLength(t *testing.T) {
	cases := map[int]int{1: 2, 7: 8, 2879: 2880, 31: 32, 121: 128, 15: 16, 9: 10}
	for n, want := range cases {
		if got := fastLength(n); got != want {
			t.Errorf("fastLength(%d) = %d, want %d", n, got, want)
		}
	}
}
