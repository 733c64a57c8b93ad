package steady

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/mesp-project/mesp/internal/draw"
)

func TestDetectStationaryRates(t *testing.T) {
	// A stationary rate is found over the whole day, and its estimate is
	// the day's mean (within 4 standard errors of the true rate).
	for _, rate := range []float64{0.02, 0.1, 0.3, 0.6, 1, 3} {
		passed, whole := 0, 0
		for seed := range 20 {
			rng := rand.New(rand.NewPCG(uint64(seed), 3))
			d := draw.Minutes(rng, 1440, draw.Constant(rate))
			got, ok := Detect(d)
			if !ok {
				continue
			}
			passed++
			se := math.Sqrt(rate / float64(got.Minutes))
			if math.Abs(got.PerMinute-rate) > 4*se {
				t.Errorf("rate %g seed %d: %.4f over %d minutes", rate, seed, got.PerMinute, got.Minutes)
			}
			if got.Minutes == 1440 {
				whole++
			}
		}
		// the tests' level is 1% each per look: nearly every draw passes,
		// and nearly every one over the whole day
		if passed < 19 || whole < 17 {
			t.Errorf("rate %g: steady in %d of 20 draws, over the whole day in %d", rate, passed, whole)
		}
	}
}

func TestDetectRefuses(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	cases := []struct {
		name string
		d    []float64
	}{
		{"silent day", make([]float64, 1440)},
		{"stopped three hours ago", append(draw.Minutes(rng, 1260, draw.Constant(0.5)), make([]float64, 180)...)},
		{"bursts", func() []float64 {
			d := make([]float64, 1440)
			for m := 7; m < len(d); m += 97 {
				d[m] = 40
			}
			return d
		}()},
		{"under a bin", []float64{1, 0, 1, 1, 0}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if r, ok := Detect(c.d); ok {
				t.Errorf("steady at %.3f over %d minutes", r.PerMinute, r.Minutes)
			}
		})
	}
}

func TestDetectADailyCycleReadsOnlyItsEnd(t *testing.T) {
	// A rate swinging 0.5-3.5 a minute over the day is not one rate over
	// any stretch of four hours or more; an hour or two near its end may
	// pass, read at the rate the cycle had there (1.25-2 a minute over
	// the last 120 minutes, 1.61-2 over the last 60).
	for seed := range 5 {
		rng := rand.New(rand.NewPCG(uint64(seed), 9))
		d := draw.Minutes(rng, 1440, func(m int) float64 { return 2 + 1.5*math.Sin(2*math.Pi*float64(m)/1440) })
		r, ok := Detect(d)
		if ok && (r.Minutes > 120 || r.PerMinute < 1.25*0.8 || r.PerMinute > 2*1.2) {
			t.Errorf("seed %d: steady at %.3f over %d minutes", seed, r.PerMinute, r.Minutes)
		}
	}
}

func TestDetectARampReadsItsEnd(t *testing.T) {
	// A rate rising all day (0.2 to 6 a minute) is not one rate over the
	// day; a stretch short enough to pass is read near its end.
	for seed := range 5 {
		rng := rand.New(rand.NewPCG(uint64(seed), 4))
		d := draw.Minutes(rng, 1440, func(m int) float64 { return 0.2 + float64(m)/248 })
		r, ok := Detect(d)
		if ok && (r.Minutes > 240 || r.PerMinute < 0.85*6) {
			t.Errorf("seed %d: steady at %.3f over %d minutes; the ramp ends at 6", seed, r.PerMinute, r.Minutes)
		}
	}
}

func TestDetectAStepTakesTheStretchAfterIt(t *testing.T) {
	// 0.2 a minute until minute 900, then 1.5: the day and the last 12
	// hours hold the step, the last 8 hours (from minute 960) do not.
	for seed := range 5 {
		rng := rand.New(rand.NewPCG(uint64(seed), 5))
		d := draw.Minutes(rng, 1440, func(m int) float64 {
			if m < 900 {
				return 0.2
			}
			return 1.5
		})
		r, ok := Detect(d)
		if !ok || r.Minutes != 480 {
			t.Fatalf("seed %d: %+v %v, want the last 480 minutes", seed, r, ok)
		}
		if math.Abs(r.PerMinute-1.5) > 4*math.Sqrt(1.5/480) {
			t.Errorf("seed %d: %.3f a minute after the step, want 1.5", seed, r.PerMinute)
		}
	}
}

func TestDetectAStepDownAnHourBack(t *testing.T) {
	// 10 a minute until an hour or two back, then 1: the stretch after
	// the step gives the rate, not the day's (p_invoke times the size of
	// an invocation had forecast the next hour 77-146% over).
	for _, back := range []int{60, 120} {
		for seed := range 5 {
			rng := rand.New(rand.NewPCG(uint64(seed), 6))
			d := draw.Minutes(rng, 1440, func(m int) float64 {
				if m < 1440-back {
					return 10
				}
				return 1
			})
			r, ok := Detect(d)
			if !ok || r.Minutes != back || math.Abs(r.PerMinute-1) > 4*math.Sqrt(1/float64(back)) {
				t.Errorf("%d minutes back, seed %d: %+v %v, want about 1 a minute over the last %d", back, seed, r, ok, back)
			}
		}
	}
}

func TestDetectAStepHalfAnHourBack(t *testing.T) {
	// a step half an hour back, up or down: the last 30 minutes' rate
	for _, step := range [][2]float64{{10, 1}, {1, 10}, {5, 50}} {
		for seed := range 5 {
			rng := rand.New(rand.NewPCG(uint64(seed), 7))
			d := draw.Minutes(rng, 1440, func(m int) float64 {
				if m < 1440-StepMinutes {
					return step[0]
				}
				return step[1]
			})
			r, ok := Detect(d)
			if !ok || r.Minutes != StepMinutes || math.Abs(r.PerMinute-step[1]) > 4*math.Sqrt(step[1]/StepMinutes) {
				t.Errorf("%g -> %g, seed %d: %+v %v, want about %g a minute over the last %d", step[0], step[1], seed, r, ok, step[1], StepMinutes)
			}
		}
	}
	// no step: a burst in the last half hour over a steady rate, or a
	// rate drifting into it, is not one rate after a step
	rng := rand.New(rand.NewPCG(3, 7))
	burst := draw.Minutes(rng, 1440, draw.Constant(0.5))
	burst[1430] = 500
	for name, d := range map[string][]float64{
		"a burst 10 minutes back": burst,
		"a rate rising all day":   draw.Minutes(rng, 1440, func(m int) float64 { return 0.2 + float64(m)/100 }),
	} {
		if r, ok := Detect(d); ok && r.Minutes == StepMinutes {
			t.Errorf("%s: read as a step, %.3f a minute", name, r.PerMinute)
		}
	}
}

func TestDetectShortHistories(t *testing.T) {
	// a history shorter than the day is tested on the looks it holds
	rng := rand.New(rand.NewPCG(1, 1))
	d := draw.Minutes(rng, 500, draw.Constant(0.4))
	r, ok := Detect(d)
	if !ok || r.Minutes != 480 {
		t.Fatalf("%+v %v, want the last 480 minutes", r, ok)
	}
}

func TestChiSquareQuantile(t *testing.T) {
	// the exact 99% quantiles (scipy.stats.chi2.ppf) the approximation stands in for
	for _, c := range []struct{ k, want float64 }{{15, 30.578}, {31, 52.191}, {47, 72.443}, {95, 129.973}} {
		if got := chiSquareQuantile(c.k); math.Abs(got-c.want)/c.want > 0.005 {
			t.Errorf("chi-square 99%% quantile at %v degrees: %.3f, want %.3f", c.k, got, c.want)
		}
	}
}

func BenchmarkDetect(b *testing.B) {
	d := draw.Minutes(rand.New(rand.NewPCG(1, 2)), 1440, draw.Constant(0.3))
	b.ReportAllocs()
	for b.Loop() {
		Detect(d)
	}
}
