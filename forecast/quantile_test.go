package forecast

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/mesp-project/mesp/internal/fixture"
)

// TestQuantilesNeverCross is a property over real rows as served: every
// served quantile is answered, in increasing order of level, each minute
// finite, never under the median or a lower quantile; the quantile trees
// do answer (some minute above the median); a timer's quantiles are its
// cycles' in phase; a silent day's are the median's.
func TestQuantilesNeverCross(t *testing.T) {
	f := loadSet(t, fixture.CopyModels(t))
	cat, _ := f.Catalog()
	levels := cat.Manifest.Quantiles
	if len(levels) < 2 {
		t.Fatalf("the shipped set serves %d quantile trees, want at least 0.9 and 0.99", len(levels))
	}
	var reqs []Request
	for _, fn := range fixture.Rows(t) {
		for _, origin := range []int{300, 720, 1080, 1260, 1380} {
			reqs = append(reqs, Request{ID: fn.ID, Counts: fn.Counts[:origin]})
		}
	}
	rng := rand.New(rand.NewPCG(3, 5))
	timer := timerDay(1440, 15, 4, 200, rng)
	reqs = append(reqs, Request{ID: "timer", Counts: timer}, Request{ID: "silent", Counts: make([]float64, 1440)})
	res, err := f.Predict(context.Background(), reqs, Routed, Counts|Quantiles)
	if err != nil {
		t.Fatal(err)
	}
	above := 0
	for i, r := range res {
		if len(r.Quantiles) != len(levels) {
			t.Fatalf("%s: %d quantiles, the set serves %d", r.ID, len(r.Quantiles), len(levels))
		}
		lower := r.Median
		for k, q := range r.Quantiles {
			if q.Q != levels[k].Q || len(q.Counts) != len(lower) {
				t.Fatalf("%s: quantile %d is %v over %d minutes, want %v over %d", r.ID, k, q.Q, len(q.Counts), levels[k].Q, len(lower))
			}
			for h, v := range q.Counts {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) || v < lower[h] {
					t.Fatalf("%s (%d minutes): q%v minute %d is %v, under the level below it %v", r.ID, len(reqs[i].Counts), q.Q, h+1, v, lower[h])
				}
				if v > r.Median[h] {
					above++
				}
			}
			lower = q.Counts
		}
	}
	if above == 0 {
		t.Fatal("no quantile above the median on any row: the quantile trees answered nothing")
	}
	// the levels a trigger may ask between the served ones never cross
	// either: every hundredth from the median to the highest level
	for _, r := range res {
		series := r.QuantileSeries()
		lower := r.Median
		for q := 0.51; q < levels[len(levels)-1].Q; q += 0.01 {
			c, ok := QuantileAt(series, q)
			if !ok {
				t.Fatalf("%s: no quantile %v between the served levels", r.ID, q)
			}
			for h, v := range c {
				if v < lower[h] {
					t.Fatalf("%s: q%.2f minute %d is %v, under the level below it %v", r.ID, q, h+1, v, lower[h])
				}
			}
			lower = c
		}
	}
	tm := res[len(res)-2]
	if tm.Timer == nil {
		t.Fatal("the 15-minute timer was not detected")
	}
	for k, q := range tm.Quantiles {
		want := tm.Timer.Quantile(timer, len(q.Counts), levels[k].FittedAt())
		scale := float32(levels[k].Scales())
		for h := range q.Counts {
			if q.Counts[h] != max(lowerOf(tm, k)[h], scale*max(float32(want[h]), tm.Median[h])) {
				t.Fatalf("timer: q%v minute %d is %v, its cycles' in phase %v (scale %v)", q.Q, h+1, q.Counts[h], want[h], scale)
			}
		}
	}
	silent := res[len(res)-1]
	for k, q := range silent.Quantiles {
		scale := float32(levels[k].Scales())
		for h, v := range q.Counts {
			if v != max(lowerOf(silent, k)[h], scale*silent.Median[h]) {
				t.Fatalf("silent day: q%v minute %d is %v, the median %v (scale %v)", q.Q, h+1, v, silent.Median[h], scale)
			}
		}
	}
}

// lowerOf is the quantile below the k-th of r (the median for the first).
func lowerOf(r Result, k int) []float32 {
	if k == 0 {
		return r.Median
	}
	return r.Quantiles[k-1].Counts
}

// TestPredictUpToAnswersTheLowerLevelsAlike: answering the levels up to
// 0.9 alone gives exactly those levels, equal to what every level's
// answer holds for them (each level reads only the ones below it).
func TestPredictUpToAnswersTheLowerLevelsAlike(t *testing.T) {
	f := loadSet(t, fixture.CopyModels(t))
	var reqs []Request
	for _, fn := range fixture.Rows(t)[:30] {
		reqs = append(reqs, Request{ID: fn.ID, Counts: fn.Counts[:1200]})
	}
	all, err := f.Predict(context.Background(), reqs, Routed, Counts|Quantiles)
	if err != nil {
		t.Fatal(err)
	}
	some, err := f.PredictUpTo(context.Background(), reqs, Routed, Counts|Quantiles, 0.9)
	if err != nil {
		t.Fatal(err)
	}
	for i := range all {
		var want []QuantileCounts
		for _, q := range all[i].Quantiles {
			if q.Q <= 0.9 {
				want = append(want, q)
			}
		}
		if len(want) == 0 || len(want) == len(all[i].Quantiles) || len(some[i].Quantiles) != len(want) {
			t.Fatalf("%s: up to 0.9 %d levels, of %d: want %d", reqs[i].ID, len(some[i].Quantiles), len(all[i].Quantiles), len(want))
		}
		for k, q := range want {
			if some[i].Quantiles[k].Q != q.Q || !slices.Equal(some[i].Quantiles[k].Counts, q.Counts) {
				t.Fatalf("%s: level %v differs answered alone", reqs[i].ID, q.Q)
			}
		}
	}
}

// TestQuantileAtInterpolatesBetweenLevels: a level qs hold answers its
// own counts; one between two is each minute's linear interpolation in
// the level; one outside them is not answered.
func TestQuantileAtInterpolatesBetweenLevels(t *testing.T) {
	qs := []QuantileCounts{{Q: 0.5, Counts: []float32{1, 4}}, {Q: 0.9, Counts: []float32{3, 4}}, {Q: 0.95, Counts: []float32{5, 14}}}
	for _, c := range []struct {
		q    float64
		want []float32
		ok   bool
	}{
		{0.5, []float32{1, 4}, true},
		{0.9, []float32{3, 4}, true},
		{0.7, []float32{2, 4}, true},
		{0.92, []float32{3.8, 8}, true},
		{0.95, []float32{5, 14}, true},
		{0.49, nil, false},
		{0.96, nil, false},
	} {
		got, ok := QuantileAt(qs, c.q)
		if ok != c.ok || len(got) != len(c.want) {
			t.Fatalf("q%v: %v, %v; want %v, %v", c.q, got, ok, c.want, c.ok)
		}
		for h := range got {
			if math.Abs(float64(got[h]-c.want[h])) > 1e-6 {
				t.Fatalf("q%v: %v, want %v", c.q, got, c.want)
			}
		}
	}
}

// TestPredictUpToBetweenLevelsAnswersTheLevelAbove: a caller that wants a
// level between two served ones gets the served levels up to the one
// above it, so that QuantileAt can answer it; the median alone runs no
// quantile graph.
func TestPredictUpToBetweenLevelsAnswersTheLevelAbove(t *testing.T) {
	f := loadSet(t, fixture.CopyModels(t))
	cat, _ := f.Catalog()
	levels := cat.Manifest.Quantiles
	reqs := []Request{{ID: "f", Counts: fixture.Rows(t)[0].Counts[:1200]}}
	for k := 1; k < len(levels); k++ {
		between := (levels[k-1].Q + levels[k].Q) / 2
		res, err := f.PredictUpTo(context.Background(), reqs, Routed, Counts|Quantiles, between)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(res[0].Quantiles); n != k+1 || res[0].Quantiles[n-1].Q != levels[k].Q {
			t.Fatalf("up to %v: %d levels, want the %d up to %v", between, n, k+1, levels[k].Q)
		}
		if _, ok := QuantileAt(res[0].QuantileSeries(), between); !ok {
			t.Fatalf("up to %v: QuantileAt cannot answer it", between)
		}
	}
	res, err := f.PredictUpTo(context.Background(), reqs, Routed, Counts|Quantiles, Median)
	if err != nil {
		t.Fatal(err)
	}
	if len(res[0].Quantiles) != 0 {
		t.Fatalf("up to the median: %d quantile levels answered", len(res[0].Quantiles))
	}
}
