package manifest

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/mesp-project/mesp/silence"
)

func TestSilenceValidate(t *testing.T) {
	good := func() *Silence {
		return &Silence{Hazard: silence.Hazard{Bins: []silence.Bin{{Gap: 1, P: 0.3}, {Gap: 60, P: 0.01}}}, MinGap: 60}
	}
	cases := []struct {
		name string
		edit func(s *Silence)
		want string
	}{
		{"as fitted", func(*Silence) {}, ""},
		{"no bins", func(s *Silence) { s.Bins = nil }, "no hazard bins"},
		{"gaps out of order", func(s *Silence) { s.Bins[1].Gap = 1 }, "increasing gaps"},
		{"not a probability", func(s *Silence) { s.Bins[0].P = 1.2 }, "want a probability"},
		{"min gap 0", func(s *Silence) { s.MinGap = 0 }, "min_gap 0"},
		{"cap from below 0", func(s *Silence) { s.CapFrom = -1 }, "cap_from -1"},
		{"past classes not from 0", func(s *Silence) {
			s.Past = []silence.PastBins{{Ratio: 2, Bins: s.Bins}}
		}, "increasing ratios from 0"},
	}
	for _, tc := range cases {
		sl := good()
		tc.edit(sl)
		m := Manifest{Silence: sl}
		err := m.validateSilence()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestSilenceCapsFromMinGapUnlessSet(t *testing.T) {
	sl := Silence{MinGap: 60}
	if sl.CapsFrom() != 60 {
		t.Fatalf("no cap_from: caps from %d, want min_gap 60", sl.CapsFrom())
	}
	sl.CapFrom = 10
	if sl.CapsFrom() != 10 {
		t.Fatalf("cap_from 10: caps from %d", sl.CapsFrom())
	}
}

func TestSparseRule(t *testing.T) {
	sp := Sparse{BelowDaily: 1000, Look: 4}
	day := func(total float64, tail ...float64) []float64 {
		d := make([]float64, 1440-len(tail))
		d[0] = total
		for _, v := range tail {
			total -= v
		}
		d[0] = total
		return append(d, tail...)
	}
	cases := []struct {
		name   string
		counts []float64
		size   float64
		ok     bool
	}{
		{"sparse: the mean of the invoked minutes among the last 4", day(300, 0, 2, 0, 4), 3, true},
		{"as many a day as the bound: the count models answer", day(1000, 0, 2, 0, 4), 0, false},
		{"a half day at 600: 1,200 a day", append(make([]float64, 719), 600), 0, false},
		{"nothing in the last 4 minutes", day(300, 0, 0, 0, 0), 0, false},
		{"silent", make([]float64, 1440), 0, false},
		{"empty", nil, 0, false},
	}
	for _, tc := range cases {
		size, ok := sp.MeanWhenInvoked(tc.counts)
		if ok != tc.ok || size != tc.size {
			t.Errorf("%s: %v %v, want %v %v", tc.name, size, ok, tc.size, tc.ok)
		}
	}
	for _, bad := range []Sparse{{BelowDaily: 0, Look: 240}, {BelowDaily: 1e4, Look: 0},
		{BelowDaily: 1e4, Look: 240, HalfLife: -1}, {BelowDaily: 1e4, Look: 240, HalfLife: math.Inf(1)},
		{BelowDaily: 1e4, Look: 240, Cap: 1.5}, {BelowDaily: 1e4, Look: 240, Cap: math.NaN()}} {
		if err := (Manifest{Sparse: &bad}).validateSparse(); err == nil {
			t.Errorf("%+v passed validation", bad)
		}
	}
}

// TestSparseSizeRecencyAndCap: with a half-life, the invoked minutes'
// counts weigh half as much that many minutes back; with a cap, each is
// first capped at that quantile of the history's invoked counts, so one
// burst among many calls does not set the size.
func TestSparseSizeRecencyAndCap(t *testing.T) {
	// a day of one call a minute, its last two hours' first half at 10
	step := make([]float64, 1440)
	for i := range step {
		step[i] = 1
		if i >= 1320 && i < 1380 {
			step[i] = 10
		}
	}
	plain := Sparse{BelowDaily: 1e5, Look: 120}
	if got, _ := plain.MeanWhenInvoked(step); got != 5.5 {
		t.Fatalf("plain mean %v, want 5.5", got)
	}
	recent := Sparse{BelowDaily: 1e5, Look: 120, HalfLife: 15}
	// the last 60 minutes (1) weigh 1 - 2^-4 of all the weight, the 60
	// before (10) 2^-4 - 2^-8
	w1, w10 := 1-math.Exp2(-4), math.Exp2(-4)-math.Exp2(-8)
	if got, _ := recent.MeanWhenInvoked(step); math.Abs(got-(w1+10*w10)/(w1+w10)) > 1e-9 {
		t.Fatalf("half-life 15: %v, want %v", got, (w1+10*w10)/(w1+w10))
	}
	// one burst of 500 among 1,440 calls of 1: capped at the 0.99 quantile
	burst := make([]float64, 1440)
	for i := range burst {
		burst[i] = 1
	}
	burst[1430] = 500
	capped := Sparse{BelowDaily: 1e5, Look: 120, Cap: 0.99}
	if got, _ := capped.MeanWhenInvoked(burst); got != 1 {
		t.Fatalf("capped: %v, want 1", got)
	}
	if got, _ := plain.MeanWhenInvoked(burst); got != (119+500)/120.0 {
		t.Fatalf("uncapped: %v, want %v", got, (119+500)/120.0)
	}
	// a level of 10 held for 89 minutes (6% of the calls) is not a burst
	high := slices.Clone(step)
	for i := 1411; i < 1440; i++ {
		high[i] = 10
	}
	if got, _ := capped.MeanWhenInvoked(high); got <= 5 {
		t.Fatalf("a sustained level capped: %v", got)
	}
}
