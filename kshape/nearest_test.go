package kshape

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/mesp-project/mesp/internal/fixture"
)

// bruteNearest tries every centroid: the largest NCC, the lowest index on
// ties.
func bruteNearest(p *Plan, x Spectrum, cs [][]float64) (int, float64, int) {
	best, bj, bs := math.Inf(-1), 0, 0
	for j, c := range cs {
		if v, s := p.MaxNCC(x, p.Spectrum(c)); v > best {
			best, bj, bs = v, j, s
		}
	}
	return bj, best, bs
}

// TestNearestEqualsBruteForce: pruning by the spectral bound never changes
// the answer, on real invocation patterns (raw and transformed, against
// centroids fitted to them) and on random series; on the real ones it must
// also actually prune.
func TestNearestEqualsBruteForce(t *testing.T) {
	fns := fixture.Rows(t)
	rng := rand.New(rand.NewPCG(7, 8))
	random := make([][]float64, 100)
	for i := range random {
		random[i] = make([]float64, 1440)
		for t := range random[i] {
			random[i][t] = rng.NormFloat64()
		}
	}
	cases := []struct {
		name      string
		transform Transform
		random    bool
		maxFFTs   float64 // average inverse FFTs per series allowed (of K = 6)
	}{
		{"raw counts", Transform{}, false, 3.5},
		{"log1p, smoothed", Transform{Log1p: true, Smooth: 15}, false, 2.5},
		{"random series", Transform{}, true, 6},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			series := random
			if !tc.random {
				series = nil
				for _, f := range fns {
					series = append(series, tc.transform.Apply(f.Counts))
				}
			}
			res, err := Fit(context.Background(), series, Options{K: 6, Seed: 3})
			if err != nil {
				t.Fatal(err)
			}
			p := NewPlan(1440)
			bank := p.NewBank(res.Centroids)
			ffts := 0
			gaps := []float64{0, 0.05, 0.0847, 0.3, math.Inf(1)}
			gapFFTs := map[float64]int{}
			for i, s := range series {
				x := p.Spectrum(ZNormalize(s))
				j, ncc, shift, n := p.Nearest(x, bank)
				ffts += n
				wj, wncc, wshift := bruteNearest(p, x, res.Centroids)
				if x.Norm == 0 {
					wj, wncc, wshift = 0, 0, 0
				}
				if j != wj || ncc != wncc || shift != wshift {
					t.Fatalf("series %d: Nearest = (%d, %v, %d), brute force (%d, %v, %d)", i, j, ncc, shift, wj, wncc, wshift)
				}
				if x.Norm == 0 {
					continue
				}
				// The runner-up: the largest NCC after the best (lower index on ties).
				best, runner := p.NearestTwo(x, bank)
				want := Match{Centroid: -1, NCC: math.Inf(-1)}
				for c, cent := range res.Centroids {
					v, sh := p.MaxNCC(x, p.Spectrum(cent))
					if c != wj && (v > want.NCC || (v == want.NCC && c < want.Centroid)) {
						want = Match{Centroid: c, NCC: v, Shift: sh}
					}
				}
				if best != (Match{Centroid: wj, NCC: wncc, Shift: wshift}) || runner != want {
					t.Fatalf("series %d: NearestTwo = %+v, %+v, brute force %d %v, %+v", i, best, runner, wj, wncc, want)
				}
				// Within a gap: the same runner-up where it is that close,
				// none where it is not, the best always.
				for _, gap := range gaps {
					top, n := p.nearest(x, bank, true, gap)
					gapFFTs[gap] += n
					wantWithin := want
					if want.NCC < wncc-gap {
						wantWithin = Match{Centroid: -1, NCC: math.Inf(-1)}
					}
					if top.match(0) != best || top.runnerUp() != wantWithin {
						t.Fatalf("series %d gap %v: %+v, %+v; want %+v, %+v", i, gap, top.match(0), top.runnerUp(), best, wantWithin)
					}
				}
			}
			// a tighter gap prunes more: fewer exact evaluations
			for k := 1; k < len(gaps); k++ {
				if gapFFTs[gaps[k-1]] > gapFFTs[gaps[k]] {
					t.Errorf("%d inverse FFTs within %v, %d within %v", gapFFTs[gaps[k-1]], gaps[k-1], gapFFTs[gaps[k]], gaps[k])
				}
			}
			// on real days, the shipped soft routing's gap (0.1 ln(7/3))
			// saves exact evaluations
			if !tc.random && gapFFTs[0.0847] >= gapFFTs[math.Inf(1)] {
				t.Errorf("%d inverse FFTs for a runner-up within 0.0847, %d for any runner-up: the gap pruned nothing", gapFFTs[0.0847], gapFFTs[math.Inf(1)])
			}
			t.Logf("inverse FFTs by runner-up gap: %v", gapFFTs)
			avg := float64(ffts) / float64(len(series))
			t.Logf("%.2f inverse FFTs per series of %d", avg, bank.Len())
			if avg > tc.maxFFTs {
				t.Errorf("%.2f inverse FFTs per series, want <= %v", avg, tc.maxFFTs)
			}
		})
	}
}

func TestNearestTiesGoToLowestIndex(t *testing.T) {
	m := 200
	c := bumpSeries(m, 80, 10)
	p := NewPlan(m)
	bank := p.NewBank([][]float64{bumpSeries(m, 20, 3), c, c, c})
	j, _, _, _ := p.Nearest(p.Spectrum(Shift(c, 5)), bank)
	if j != 1 {
		t.Fatalf("nearest of three equal centroids: %d, want 1", j)
	}
	if j, ncc, _, n := p.Nearest(p.Spectrum(make([]float64, m)), bank); j != 0 || ncc != 0 || n != 0 {
		t.Fatalf("flat series: (%d, %v, %d FFTs), want (0, 0, 0)", j, ncc, n)
	}
}

func bumpSeries(m, at, width int) []float64 {
	x := make([]float64, m)
	for t := range x {
		x[t] = math.Exp(-math.Pow(float64(t-at)/float64(width), 2))
	}
	return ZNormalize(x)
}
