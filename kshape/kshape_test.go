package kshape

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/mesp-project/mesp/internal/fixture"
	"github.com/mesp-project/mesp/trace"
)

// adjustedRand is the adjusted Rand index of two labelings.
func adjustedRand(a, b []int) float64 {
	type pair struct{ x, y int }
	nij := map[pair]int{}
	ai, bj := map[int]int{}, map[int]int{}
	for i := range a {
		nij[pair{a[i], b[i]}]++
		ai[a[i]]++
		bj[b[i]]++
	}
	c2 := func(n int) float64 { return float64(n) * float64(n-1) / 2 }
	var index, sa, sb float64
	for _, v := range nij {
		index += c2(v)
	}
	for _, v := range ai {
		sa += c2(v)
	}
	for _, v := range bj {
		sb += c2(v)
	}
	expected := sa * sb / c2(len(a))
	return (index - expected) / ((sa+sb)/2 - expected)
}

// shapes are K distinct daily shapes (m points).
func shapes(m int) [][]float64 {
	out := make([][]float64, 4)
	for j := range out {
		out[j] = make([]float64, m)
	}
	for t := range m {
		x := float64(t) / float64(m)
		out[0][t] = math.Exp(-math.Pow((x-0.3)/0.05, 2)) // one morning peak
		out[1][t] = math.Sin(2*math.Pi*x*6) + 1          // four-hourly cycle
		if t%(m/4) < 8 {                                 // short periodic batch spikes
			out[2][t] = 5
		}
		out[3][t] = x*x + 0.3*math.Exp(-math.Pow((x-0.8)/0.02, 2)) // ramp with an evening blip
	}
	return out
}

func synthetic(rng *rand.Rand, m, perShape, maxShift int) (series [][]float64, truth []int) {
	for j, s := range shapes(m) {
		for range perShape {
			x := Shift(s, rng.IntN(2*maxShift+1)-maxShift)
			for t := range x {
				x[t] = x[t]*(1+rng.Float64()) + 0.05*rng.NormFloat64()
			}
			series = append(series, x)
			truth = append(truth, j)
		}
	}
	return series, truth
}

func TestRecoversShiftedShapes(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	series, truth := synthetic(rng, 288, 40, 20)
	for _, init := range []string{"kshape++", "random"} {
		res, err := Fit(context.Background(), series, Options{K: 4, Seed: 1, Restarts: 3, Init: init})
		if err != nil {
			t.Fatal(err)
		}
		if ari := adjustedRand(truth, res.Labels); ari < 0.95 {
			t.Errorf("%s: adjusted Rand index %.3f < 0.95", init, ari)
		}
		var s float64
		for _, d := range res.Distances {
			s += d
		}
		if math.Abs(s-res.Objective) > 1e-9 {
			t.Errorf("objective %v != sum of distances %v", res.Objective, s)
		}
	}
}

func TestDeterministicForSeed(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	series, _ := synthetic(rng, 96, 10, 5)
	a, err := Fit(context.Background(), series, Options{K: 3, Seed: 42, Restarts: 2})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Fit(context.Background(), series, Options{K: 3, Seed: 42, Restarts: 2, Workers: 1})
	if a.Objective != b.Objective {
		t.Fatalf("objectives differ: %v vs %v", a.Objective, b.Objective)
	}
	for i := range a.Labels {
		if a.Labels[i] != b.Labels[i] {
			t.Fatalf("label %d differs", i)
		}
	}
}

func TestEmptyClusterRepairedAndConstantSeries(t *testing.T) {
	// Two real shapes plus several all-zero series; K = 4 forces clusters
	// that would come out empty. No centroid may be NaN or all-zero.
	rng := rand.New(rand.NewPCG(5, 5))
	series, _ := synthetic(rng, 64, 5, 3)
	series = series[:10]
	for range 3 {
		series = append(series, make([]float64, 64))
	}
	labels := make([]int, len(series)) // everything starts in cluster 0
	res, err := FitFrom(context.Background(), series, labels, Options{K: 4, MaxIter: 20})
	if err != nil {
		t.Fatal(err)
	}
	size := make([]int, 4)
	for _, l := range res.Labels {
		size[l]++
	}
	for j, c := range res.Centroids {
		if size[j] == 0 {
			t.Errorf("cluster %d empty", j)
		}
		for _, v := range c {
			if math.IsNaN(v) {
				t.Fatalf("centroid %d has NaN", j)
			}
		}
	}
}

func TestBadInput(t *testing.T) {
	cases := []struct {
		name   string
		series [][]float64
		k      int
	}{
		{"no series", nil, 1},
		{"k too large", [][]float64{{1, 2}}, 2},
		{"ragged", [][]float64{{1, 2, 3}, {1, 2}}, 1},
		{"NaN", [][]float64{{1, math.NaN()}, {1, 2}}, 1},
	}
	for _, tc := range cases {
		if _, err := Fit(context.Background(), tc.series, Options{K: tc.k}); err == nil {
			t.Errorf("%s: want an error", tc.name)
		}
	}
}

// TestNoEmptyClusterAtIterationCap: when the cap stops a run, the final
// assignment can leave a cluster empty (here, with these augmented real
// rows, cluster 2 every time); it must come back with members.
func TestNoEmptyClusterAtIterationCap(t *testing.T) {
	fns := fixture.Rows(t)
	tr := Transform{Log1p: true, Smooth: 15}
	rng := rand.New(rand.NewPCG(1, 1))
	var series [][]float64
	for i := range 300 {
		series = append(series, tr.Apply(trace.Augment(fns[i%len(fns)].Counts, 120, 0.1, rng)))
	}
	for _, maxIter := range []int{1, 2, 3} {
		opts := Options{K: 8, MaxIter: maxIter, Seed: 1}
		res, err := Fit(context.Background(), series, opts)
		if err != nil {
			t.Fatal(err)
		}
		size := make([]int, opts.K)
		for _, l := range res.Labels {
			size[l]++
		}
		for j, s := range size {
			if s == 0 {
				t.Fatalf("cap %d: cluster %d is empty (sizes %v)", maxIter, j, size)
			}
		}
	}
}

// TestChooseKFindsTheShapesAndStopsEarly: four true shapes are found, the
// search stops ChoosePatience values of K past the best instead of trying
// every K up to 16, and each K's iterations are reported with that K.
func TestChooseKFindsTheShapesAndStopsEarly(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	series, _ := synthetic(rng, 288, 30, 10)
	x, err := MatrixOf(series)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	opts := Options{Seed: 1, Restarts: 1, Progress: func(p Progress) { seen[p.K] = true }}
	best, table, err := ChooseK(context.Background(), x, 2, 16, opts, 200)
	if err != nil {
		t.Fatal(err)
	}
	if best.K != 4 {
		t.Fatalf("chose K=%d, want 4 (table %v)", best.K, len(table))
	}
	if last := table[len(table)-1].K; last != best.K+ChoosePatience || len(table) != last-1 {
		t.Fatalf("tried K up to %d (%d rows), want up to %d", last, len(table), best.K+ChoosePatience)
	}
	for _, s := range table {
		if !seen[s.K] {
			t.Fatalf("no progress reported for K=%d", s.K)
		}
	}
}
