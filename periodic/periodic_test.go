package periodic

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/mesp-project/mesp/internal/draw"
)

// timer is a day of pulses of size every period minutes from phase on,
// each a minute early or late at random when jitter is set.
func timer(n, period, phase int, size float64, jitter bool, rng *rand.Rand) []float64 {
	x := make([]float64, n)
	for at := phase; at < n; at += period {
		i := at
		if jitter {
			i += rng.IntN(3) - 1
		}
		if i >= 0 && i < n {
			x[i] += size
		}
	}
	return x
}

func TestDetect(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	burst := make([]float64, 1440)
	for i := 600; i < 700; i++ {
		burst[i] = 5
	}
	sparse := make([]float64, 1440)
	for _, i := range []int{17, 400, 1001} {
		sparse[i] = 1
	}
	cases := []struct {
		name   string
		counts []float64
		period int // 0: no timer
	}{
		{"every 15 minutes", timer(1440, 15, 3, 600, false, rng), 15},
		{"hourly", timer(1440, 60, 41, 100, false, rng), 60},
		{"hourly, jittered", timer(1440, 60, 12, 100, true, rng), 60},
		{"every 7 minutes, jittered", timer(1440, 7, 2, 200, true, rng), 7},
		{"every 2 minutes", timer(1440, 2, 1, 3, false, rng), 2},
		{"every 4 hours, short history", timer(1440, 240, 100, 9, false, rng), 240},
		{"every 5 minutes, 1080 minutes", timer(1080, 5, 0, 1, false, rng), 5},
		{"silent", make([]float64, 1440), 0},
		{"three calls", sparse, 0},
		{"Poisson 0.3 a minute", draw.Minutes(rng, 1440, draw.Constant(0.3)), 0},
		{"Poisson 0.05 a minute", draw.Minutes(rng, 1440, draw.Constant(0.05)), 0},
		{"every minute", timer(1440, 1, 0, 4, false, rng), 0},
		{"one busy burst", burst, 0},
	}
	for _, tc := range cases {
		got, ok := Detect(tc.counts)
		if tc.period == 0 {
			if ok {
				t.Errorf("%s: detected period %d, want no timer", tc.name, got.Period)
			}
			continue
		}
		if !ok || got.Period != tc.period {
			t.Errorf("%s: got period %d (ok %v), want %d", tc.name, got.Period, ok, tc.period)
		}
	}
}

func TestForecastInPhase(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, tc := range []struct {
		name          string
		period        int
		size          float64
		jitter        bool
		maxHourErr    float64
		pulseMinuteOK bool
	}{
		{"15 minutes, exact", 15, 600, false, 0.01, true},
		{"hourly, exact", 60, 100, false, 0.01, true},
		{"7 minutes, jittered", 7, 200, true, 0.15, false},
		{"hourly, jittered", 60, 100, true, 0.15, false},
	} {
		// a jittered timer's hour is judged over its phases: one pulse
		// jittered across the hour's edge is an eighth of a 7-minute
		// timer's hour
		var absErr, total float64
		for phase := range min(tc.period, 12) {
			day := timer(1440+60, tc.period, phase, tc.size, tc.jitter, rng)
			hist, next := day[:1440], day[1440:]
			tm, ok := Detect(hist)
			if !ok {
				t.Fatalf("%s phase %d: no timer", tc.name, phase)
			}
			mean, p := tm.Forecast(hist, 60)
			var F, Y float64
			for h := range next {
				F += mean[h]
				Y += next[h]
				if tc.pulseMinuteOK && next[h] > 0 && (mean[h] != next[h] || p[h] != 1) {
					t.Errorf("%s phase %d: minute %d forecast %g (p %g), comes %g", tc.name, phase, h+1, mean[h], p[h], next[h])
				}
			}
			if !tc.jitter && math.Abs(F-Y) > tc.maxHourErr*Y {
				t.Errorf("%s phase %d: hour forecast %g, comes %g", tc.name, phase, F, Y)
			}
			absErr += math.Abs(F - Y)
			total += Y
		}
		if absErr > tc.maxHourErr*total {
			t.Errorf("%s: hour error %.3f of the volume over phases, want at most %g", tc.name, absErr/total, tc.maxHourErr)
		}
	}
}

func TestForecastAveragesTheLastCycles(t *testing.T) {
	// a 10-minute timer whose pulses grew from 1 to 100 long ago: only the
	// last MaxCycles cycles count
	day := timer(600, 10, 9, 1, false, nil)
	for i := 600 - 10*MaxCycles; i < 600; i++ {
		day[i] *= 100
	}
	tm, ok := Detect(day)
	if !ok || tm.Period != 10 {
		t.Fatalf("period %d ok %v", tm.Period, ok)
	}
	mean, _ := tm.Forecast(day, 60)
	for h, v := range mean {
		want := 0.0
		if (599+h+1)%10 == 9 {
			want = 100
		}
		if v != want {
			t.Fatalf("minute %d: %g, want %g", h+1, v, want)
		}
	}
}

// A timer's quantiles in phase: each minute's q-quantile over the last
// cycles, by hand. Pulses of 10 land one minute early, on time or late
// (cycles back: late, on time, early, on time, late, on time, on time,
// early); the minute before, on and after the phase minute were hit in 2,
// 4 and 2 of the 8 cycles.
func TestQuantileInPhase(t *testing.T) {
	const period = 20
	tm := Timer{Period: period}
	counts := make([]float64, 200)
	// the phase minute of cycle c back is 199 + 5 - c*20 (five minutes ahead)
	offsets := []int{1, 0, -1, 0, 1, 0, 0, -1}
	for c, off := range offsets {
		counts[199+5-(c+1)*period+off] = 10
	}
	cases := []struct {
		q    float64
		want [3]float64 // minutes 4, 5 and 6 ahead
	}{
		{0.5, [3]float64{0, 0, 0}},    // the 4th smallest of 8: half the cycles missed each
		{0.75, [3]float64{0, 10, 0}},  // the 6th: 2 hits of 8 are not enough
		{0.8, [3]float64{10, 10, 10}}, // the 7th
		{0.99, [3]float64{10, 10, 10}},
	}
	for _, c := range cases {
		got := tm.Quantile(counts, 60, c.q)
		if [3]float64{got[3], got[4], got[5]} != c.want {
			t.Errorf("q%v: minutes 4..6 ahead %v, want %v", c.q, got[3:6], c.want)
		}
		for h, v := range got[:period] {
			if (h < 3 || h > 5) && v != 0 {
				t.Errorf("q%v: minute %d ahead %v, want 0 (no pulse in its phase)", c.q, h+1, v)
			}
		}
	}
	// the mean over the same cycles spreads the pulse
	mean, _ := tm.Forecast(counts, 60)
	if mean[4] != 5 || mean[3] != 2.5 {
		t.Fatalf("mean %v, want 2.5 and 5", mean[3:6])
	}
}

// TestDetectAllocatesNothingOnceWarm: Detect runs for every routed forecast
// and every function of a minute's decision table; its working memory is
// reused (a day's buffers were tens of kilobytes a call).
func TestDetectAllocatesNothingOnceWarm(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	days := [][]float64{timer(Lookback, 15, 3, 600, true, rng), timer(Lookback, 7, 0, 2, false, rng)}
	busy := make([]float64, Lookback)
	for i := range busy {
		if rng.Float64() < 0.3 {
			busy[i] = 1
		}
	}
	days = append(days, busy)
	for _, x := range days {
		Detect(x)
	}
	if avg := testing.AllocsPerRun(50, func() {
		for _, x := range days {
			Detect(x)
		}
	}); avg >= 1 {
		t.Fatalf("%.2f allocations a call, want none", avg/float64(len(days)))
	}
}

// TestSizeCycle: two schedules on one function (every a minutes and every
// b, a multiple of a) pulse at a and repeat at b: the forecasts are in
// phase at b, and the hour ahead, the hourly pulse in it, comes out
// exact; one schedule, exact or jittered, or over a Poisson background,
// keeps its own period.
func TestSizeCycle(t *testing.T) {
	r := func(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 6)) }
	rng := r(0)
	sum := func(a, b []float64) []float64 {
		for i := range a {
			a[i] += b[i]
		}
		return a
	}
	for _, tc := range []struct {
		name          string
		day           []float64
		period, cycle int
	}{
		{"5 minutes and hourly", sum(timer(1500, 5, 1, 3, false, r(1)), timer(1500, 60, 7, 100, false, r(2))), 5, 60},
		{"10 minutes and hourly", sum(timer(1500, 10, 4, 2, false, r(3)), timer(1500, 60, 4, 50, false, r(4))), 10, 60},
		{"15 minutes and two-hourly", sum(timer(1500, 15, 0, 10, false, r(5)), timer(1500, 120, 30, 300, false, r(6))), 15, 120},
		{"10 minutes and hourly, jittered", sum(timer(1500, 10, 4, 2, true, r(7)), timer(1500, 60, 4, 50, true, r(8))), 10, 60},
		{"15 minutes", timer(1500, 15, 3, 600, false, r(9)), 15, 0},
		{"15 minutes, 1 to 3 calls a pulse", func() []float64 {
			x := timer(1500, 15, 3, 1, false, r(10))
			for i, v := range x {
				x[i] = v * float64(1+rng.IntN(3))
			}
			return x
		}(), 15, 0},
		{"hourly", timer(1500, 60, 41, 100, false, r(11)), 60, 0},
		{"7 minutes, jittered", timer(1500, 7, 2, 200, true, r(12)), 7, 0},
		{"hourly, jittered", timer(1500, 60, 12, 100, true, r(13)), 60, 0},
	} {
		hist, next := tc.day[:1440], tc.day[1440:]
		tm, ok := Detect(hist)
		if !ok || tm.Period != tc.period || tm.Cycle != tc.cycle {
			t.Errorf("%s: period %d cycle %d (ok %v), want %d and %d", tc.name, tm.Period, tm.Cycle, ok, tc.period, tc.cycle)
			continue
		}
		if tc.cycle == 0 || strings.Contains(tc.name, "jittered") {
			continue // a jittered pulse is spread over its minutes
		}
		mean, p := tm.Forecast(hist, 60)
		for h, v := range next {
			if mean[h] != v || (v > 0) != (p[h] == 1) {
				t.Errorf("%s: minute %d forecast %v (p %v), %v came", tc.name, h+1, mean[h], p[h], v)
				break
			}
		}
	}
}

func TestOffPhaseCap(t *testing.T) {
	timer := Timer{Period: 10, Tolerance: 2}
	pulsed := func(n int, extra ...int) []float64 {
		x := make([]float64, n)
		for i := 9; i < n; i += 10 {
			x[i] = 3
		}
		for _, i := range extra {
			x[i] = 1
		}
		return x
	}
	// phases 7, 8, 9, 0, 1 are within two minutes of the pulse (minute
	// ahead h is at phase (h-1) mod 10): minutes 1, 2, 8, 9, 10 ahead
	for _, c := range []struct {
		name   string
		counts []float64
		want   map[int]float64 // minute ahead -> cap
	}{
		{"no call off phase: (0+1)/(50+2)", pulsed(100), map[int]float64{1: 1, 2: 1, 3: 1.0 / 52, 5: 1.0 / 52, 7: 1.0 / 52, 8: 1, 10: 1, 13: 1.0 / 52}},
		{"one off-phase call before the last cycles", pulsed(100, 4), map[int]float64{3: 2.0 / 52, 7: 2.0 / 52, 9: 1}},
		{"one in them, at phase 4: phases 2-6 are on too", pulsed(100, 94), map[int]float64{3: 1, 5: 1, 7: 1, 8: 1}},
	} {
		got := timer.OffPhaseCap(c.counts, 20)
		for h, w := range c.want {
			if math.Abs(got[h-1]-w) > 1e-12 {
				t.Errorf("%s: minute %d ahead capped at %v, want %v", c.name, h, got[h-1], w)
			}
		}
	}
	if got := timer.OffPhaseCap(make([]float64, 5), 3); got[0] != 1 {
		t.Errorf("history shorter than the period: %v, want no cap", got)
	}
}

// TestMissesCountsEveryNeighbourCheck: the bitset count of a period's
// misses equals the check done pulse by pulse (each pulse's minutes one
// period back and ahead, where the tolerance window lies in the history,
// with no invoked minute within the tolerance), up to the allowed count
// it may stop past; on random days of every density, every period and
// tolerance, and lengths that end mid-word.
func TestMissesCountsEveryNeighbourCheck(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	for _, n := range []int{64, 200, 1200, 1440} {
		for _, density := range []float64{0.01, 0.05, 0.2, 0.5} {
			x := make([]float64, n)
			var pulses []int
			for i := range x {
				if rng.Float64() < density {
					x[i], pulses = 1, append(pulses, i)
				}
			}
			s := new(scratch)
			s.setInvoked(pulses, n)
			for p := MinPeriod; p*MinCycles <= n; p++ {
				for tol := 0; tol <= maxTolerance; tol++ {
					want := 0
					for _, i := range pulses {
						for _, j := range [2]int{i - p, i + p} {
							if j-tol < 0 || j+tol >= n {
								continue
							}
							near := false
							for k := j - tol; k <= j+tol; k++ {
								near = near || x[k] > 0
							}
							if !near {
								want++
							}
						}
					}
					if got := s.misses(p, tol, n, len(pulses)*2); got != want {
						t.Fatalf("n %d, density %v, period %d, tolerance %d: %d misses, want %d", n, density, p, tol, got, want)
					}
					if allowed := want / 2; want > 0 {
						if got := s.misses(p, tol, n, allowed); got <= allowed {
							t.Fatalf("n %d, period %d, tolerance %d: stopped at %d of %d misses with %d allowed", n, p, tol, got, want, allowed)
						}
					}
				}
			}
		}
	}
}
