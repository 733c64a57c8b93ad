package forecast

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/mesp-project/mesp/config"
	"github.com/mesp-project/mesp/internal/draw"
	"github.com/mesp-project/mesp/internal/fixture"
	"github.com/mesp-project/mesp/manifest"
	"github.com/mesp-project/mesp/onnx"
	"github.com/mesp-project/mesp/steady"
	"github.com/mesp-project/mesp/trace"
)

// The behaviour suite: what any reasonable forecaster answers for the
// patterns a user sends first, on the shipped set as served. Each class
// states its rule; the cases are drawn over periods, phases, sizes and
// jitter, not picked to pass.

// behaviour answers one day-long history: the next hour's counts (the
// served forecast) and which minutes are warm at the set's threshold.
func behaviour(t *testing.T) func(counts []float64) (forecast []float64, warm []bool) {
	t.Helper()
	f := loadSet(t, fixture.CopyModels(t))
	cat, _ := f.Catalog()
	th := float32(cat.PrewarmThreshold())
	return func(counts []float64) ([]float64, []bool) {
		res, err := f.Predict(context.Background(), []Request{{ID: "b", Counts: counts}}, Routed, Counts|PInvoke)
		if err != nil {
			t.Fatal(err)
		}
		fc, warm := make([]float64, len(res[0].Forecast)), make([]bool, len(res[0].PInvoke))
		for h := range fc {
			fc[h], warm[h] = float64(res[0].Forecast[h]), res[0].PInvoke[h] >= th
		}
		return fc, warm
	}
}

func sum(x []float64) float64 {
	var s float64
	for _, v := range x {
		s += v
	}
	return s
}

func TestBehaviourSilence(t *testing.T) {
	answer := behaviour(t)
	// rule: a function silent for hours is warm in at most 3 of the next
	// 60 minutes and forecast at most one invocation in the hour
	busy := func(until int) []float64 {
		d := make([]float64, 1440)
		for i := range until {
			d[i] = 20
		}
		return d
	}
	oneCall := func(at int) []float64 {
		d := make([]float64, 1440)
		d[at] = 1
		return d
	}
	cases := map[string][]float64{
		"a silent day":                       make([]float64, 1440),
		"a silent half day (720 minutes)":    make([]float64, 720),
		"the shortest pattern served, zeros": make([]float64, 240),
		"one call 12 hours ago":              oneCall(1440 - 720),
		"one call 6 hours ago":               oneCall(1440 - 360),
		"one call 3 hours ago":               oneCall(1440 - 180),
		"busy until 6 hours ago":             busy(1440 - 360),
		"busy until 3 hours ago":             busy(1440 - 180),
	}
	for name, counts := range cases {
		fc, warm := answer(counts)
		var n int
		for _, w := range warm {
			if w {
				n++
			}
		}
		if n > 3 || sum(fc) > 1 {
			t.Errorf("%s: %d of 60 minutes warm, %g invocations forecast; want at most 3 and 1", name, n, sum(fc))
		}
	}
}

// loadSet is a Forecaster over the models folder dir, closed with the test.
func loadSet(t *testing.T, dir string) *Forecaster {
	t.Helper()
	if _, err := onnx.Init(config.ORT{}.ORTLibrary()); err != nil {
		t.Fatal(err)
	}
	f := New(dir, onnx.Options{IntraOpThreads: 1}, Batching{})
	if _, err := f.Reload(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f
}

// timerDay is n minutes of pulses every period minutes at phase, each a
// minute early or late at random when jittered.
func timerDay(n, period, phase int, size float64, rng *rand.Rand) []float64 {
	d := make([]float64, n)
	for at := phase; at < n; at += period {
		i := at
		if rng != nil {
			i += rng.IntN(3) - 1
		}
		if i >= 0 && i < n {
			d[i] += size
		}
	}
	return d
}

func TestBehaviourStoppedHalfAnHourAgo(t *testing.T) {
	answer := behaviour(t)
	// rule: a busy function silent for the last half hour, longer than
	// any gap it showed, is forecast at most a tenth of its former rate's
	// hour (its p_invoke is the silence hazard's; the models read its day)
	rng := rand.New(rand.NewPCG(3, 17))
	for _, rate := range []float64{20, 50, 200} {
		d := draw.Minutes(rng, 1440, draw.Constant(rate))
		clear(d[1410:])
		if fc, _ := answer(d); sum(fc) > 0.1*60*rate {
			t.Errorf("%g a minute until 30 minutes ago: %.0f in the next hour forecast, want at most %.0f", rate, sum(fc), 6*rate)
		}
	}
}

func TestBehaviourTimers(t *testing.T) {
	answer := behaviour(t)
	// rule: a timer's next hour within 15% of what comes (over its phases
	// when jittered: one pulse across the hour's edge is a large share of
	// a short period's hour); every pulse minute of an exact timer warm,
	// and of one of 10 minutes or more at most two minutes more than two
	// minutes from any pulse (an instance kept between pulses is the
	// idle memory pre-warming exists to save)
	rng := rand.New(rand.NewPCG(7, 11))
	for _, period := range []int{5, 7, 10, 15, 30, 60, 120} {
		for _, size := range []float64{1, 40, 600} {
			for _, jitter := range []bool{false, true} {
				if jitter && period < 7 {
					continue // a minute either way is most of a 5-minute cycle
				}
				name := fmt.Sprintf("every %d minutes, %g a pulse, jitter %v", period, size, jitter)
				var absErr, total float64
				for k := range 4 {
					phase := (k*period)/4 + rng.IntN(max(1, period/4))
					var r *rand.Rand
					if jitter {
						r = rng
					}
					day := timerDay(1500, period, phase, size, r)
					fc, warm := answer(day[:1440])
					next := day[1440:]
					absErr += math.Abs(sum(fc) - sum(next))
					total += sum(next)
					offWarm := 0
					for h, v := range next {
						if !jitter && v > 0 && !warm[h] {
							t.Errorf("%s, phase %d: pulse minute %d cold", name, phase, h+1)
						}
						if warm[h] && sum(day[1440+h-2:min(len(day), 1440+h+3)]) == 0 {
							offWarm++
						}
					}
					if !jitter && period >= 10 && offWarm > 2 {
						t.Errorf("%s, phase %d: %d minutes warm more than two minutes from any pulse", name, phase, offWarm)
					}
				}
				if absErr > 0.15*total {
					t.Errorf("%s: the hour off by %.0f%% over four phases", name, 100*absErr/total)
				}
			}
		}
	}
}

func TestBehaviourTwoSchedules(t *testing.T) {
	answer := behaviour(t)
	// rule: a function on two schedules, a short period and a longer one
	// that is a multiple of it (every 5 minutes and on the hour), gets its
	// next hour within 15%, the longer schedule's pulse in it, with every
	// pulse minute warm
	rng := rand.New(rand.NewPCG(9, 13))
	for _, c := range []struct {
		short, long  int
		small, large float64
	}{{5, 60, 3, 100}, {10, 60, 2, 50}, {15, 120, 10, 300}, {6, 60, 1, 30}, {20, 60, 5, 40}} {
		for k := range 3 {
			phase := rng.IntN(c.long)
			day := timerDay(1500, c.short, phase%c.short, c.small, nil)
			for i, v := range timerDay(1500, c.long, phase, c.large, nil) {
				day[i] += v
			}
			fc, warm := answer(day[:1440])
			next := day[1440:]
			if got, want := sum(fc), sum(next); math.Abs(got-want) > 0.15*want {
				t.Errorf("every %d minutes (%g) and every %d (%g), phase %d: %.0f in the hour forecast, %.0f come", c.short, c.small, c.long, c.large, phase, got, want)
			}
			for h, v := range next {
				if v > 0 && !warm[h] {
					t.Errorf("every %d and every %d minutes, try %d: pulse minute %d cold", c.short, c.long, k, h+1)
				}
			}
		}
	}
}

func TestBehaviourRates(t *testing.T) {
	answer := behaviour(t)
	// rule: a constant rate is forecast at that rate, within 10% over the
	// hour; after a step, the new level within 20%
	level := func(n int, f func(i int) float64) []float64 {
		d := make([]float64, n)
		for i := range d {
			d[i] = f(i)
		}
		return d
	}
	cases := []struct {
		name   string
		counts []float64
		rate   float64
		tol    float64
	}{
		{"constant 5 a minute", level(1440, func(int) float64 { return 5 }), 5, 0.1},
		{"constant 50 a minute", level(1440, func(int) float64 { return 50 }), 50, 0.1},
		{"constant 2,000 a minute", level(1440, func(int) float64 { return 2000 }), 2000, 0.1},
		{"step up 20 -> 100, 3 hours ago", level(1440, func(i int) float64 { return map[bool]float64{true: 100, false: 20}[i >= 1260] }), 100, 0.2},
		{"step down 100 -> 5, 3 hours ago", level(1440, func(i int) float64 { return map[bool]float64{true: 5, false: 100}[i >= 1260] }), 5, 0.2},
	}
	for _, tc := range cases {
		fc, _ := answer(tc.counts)
		if got := sum(fc) / 60; math.Abs(got-tc.rate) > tc.tol*tc.rate {
			t.Errorf("%s: %.2f a minute forecast, want %g within %g%%", tc.name, got, tc.rate, 100*tc.tol)
		}
	}
}

// TestBehaviourSmallFunctionsFollowASteppedRate: a small function whose
// rate stepped up or down half an hour to two hours ago is forecast at
// the rate since, within what that many minutes can tell of it (3.5
// standard deviations of the new rate's estimate, at least 20%). Before
// the steady rates read the last half hour, hour and two hours, 10 calls
// a minute then 1 for the last half hour had the next hour at 4.6 times
// the new rate.
func TestBehaviourSmallFunctionsFollowASteppedRate(t *testing.T) {
	answer := behaviour(t)
	for _, step := range [][2]float64{{1, 10}, {10, 1}, {5, 15}, {15, 5}} {
		for _, back := range []int{30, 60, 120} {
			for seed := range 3 {
				rng := rand.New(rand.NewPCG(uint64(seed), uint64(back)))
				d := draw.Minutes(rng, 1440, func(m int) float64 {
					if m < 1440-back {
						return step[0]
					}
					return step[1]
				})
				fc, _ := answer(d)
				tol := max(0.2, 3.5/math.Sqrt(step[1]*float64(back)))
				if got := sum(fc) / 60; math.Abs(got-step[1]) > tol*step[1] {
					t.Errorf("%g -> %g a minute %d minutes back, seed %d: %.2f a minute forecast, want %g within %.0f%%",
						step[0], step[1], back, seed, got, step[1], 100*tol)
				}
			}
		}
	}
}

// TestTimersAndSilenceAreWhatAnswers: the timers' expert answers a timer's
// counts (and not with router.timers off), and the silence hazard caps a
// silent day's p_invoke (and not once the manifest has no hazard).
func TestTimersAndSilenceAreWhatAnswers(t *testing.T) {
	if _, err := onnx.Init(config.ORT{}.ORTLibrary()); err != nil {
		t.Fatal(err)
	}
	dir := fixture.CopyModels(t)
	load := func(skipTimers bool) *Forecaster {
		f := New(dir, onnx.Options{IntraOpThreads: 1}, Batching{})
		f.SkipTimers = skipTimers
		if _, err := f.Reload(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(f.Close)
		return f
	}
	ctx := context.Background()
	timer := timerDay(1440, 15, 6, 600, nil)
	silent := make([]float64, 1440)
	reqs := []Request{{ID: "timer", Counts: timer}, {ID: "silent", Counts: silent}}
	on, off := load(false), load(true)
	got := mustPredict(t, on, reqs, Counts|PInvoke)
	models := mustPredict(t, off, reqs, Counts|PInvoke)
	if got[0].Timer == nil || got[0].Timer.Period != 15 || models[0].Timer != nil {
		t.Fatalf("timer: %+v served, %+v with timers off", got[0].Timer, models[0].Timer)
	}
	if sum32(got[0].Forecast) != 4*600 || sum32(models[0].Forecast) == 4*600 {
		t.Errorf("timer's hour: %g served, %g by the count models; 2,400 come", sum32(got[0].Forecast), sum32(models[0].Forecast))
	}
	if got[1].Silence != 1440 {
		t.Fatalf("silent day: capped at gap %d, want 1440", got[1].Silence)
	}
	set := on.Current()
	// a day with no invocation closed no gap: past every ratio (-1)
	for h, p := range got[1].PInvoke {
		if hz := set.Manifest.Silence.AtPast(1440+h, -1); float64(p) > hz+1e-7 {
			t.Fatalf("silent day: p_invoke %g at minute %d above the hazard %g", p, h+1, hz)
		}
	}
	editManifest(t, dir, func(m *manifest.Manifest) { m.Silence = nil })
	uncapped := load(false)
	raw, err := uncapped.Predict(ctx, reqs[1:], Routed, PInvoke)
	if err != nil {
		t.Fatal(err)
	}
	if raw[0].Silence != 0 || sum32(raw[0].PInvoke) <= sum32(got[1].PInvoke) {
		t.Errorf("without the hazard: gap %d, p_invoke summing to %g against %g capped", raw[0].Silence, sum32(raw[0].PInvoke), sum32(got[1].PInvoke))
	}
}

func sum32(x []float32) float64 {
	var s float64
	for _, v := range x {
		s += float64(v)
	}
	return s
}

// TestExtremeCountsAnswerFinitely: the largest counts inputs may hold
// (trace.MaxCount a minute) answer finite forecasts and probabilities on
// every path (routed, dense, each expert), and one count beyond it is a
// clear error: counts of 1e34, valid float32, made the graphs answer NaN
// and Inf (500 over HTTP, +Inf to KEDA).
func TestExtremeCountsAnswerFinitely(t *testing.T) {
	if _, err := onnx.Init(config.ORT{}.ORTLibrary()); err != nil {
		t.Fatal(err)
	}
	f := New(fixture.CopyModels(t), onnx.Options{IntraOpThreads: 1}, Batching{})
	cat, err := f.ReloadCatalog()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	flat, spike, alternating := make([]float64, 1440), make([]float64, 1440), make([]float64, 1440)
	for i := range flat {
		flat[i] = trace.MaxCount
		if i%2 == 0 {
			alternating[i] = trace.MaxCount
		}
	}
	spike[1439] = trace.MaxCount
	reqs := []Request{{ID: "flat", Counts: flat}, {ID: "spike", Counts: spike}, {ID: "alternating", Counts: alternating}}
	finite := func(what string, xs []float32) {
		for h, v := range xs {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) || v < 0 {
				t.Fatalf("%s: minute %d is %v", what, h, v)
			}
		}
	}
	for _, mode := range []Mode{Routed, DenseOnly} {
		res, err := f.Predict(context.Background(), reqs, mode, Counts|PInvoke)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			finite(fmt.Sprintf("mode %d %s forecast", mode, r.ID), r.Forecast)
			finite(fmt.Sprintf("mode %d %s p_invoke", mode, r.ID), r.PInvoke)
		}
	}
	for id := range cat.InputLens {
		res, err := f.ForecastModel(context.Background(), reqs, id)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			finite(id+" "+r.ID, r.Forecast)
		}
	}
	over := slices.Clone(flat)
	over[7] = 1e34
	if _, err := f.Predict(context.Background(), []Request{{ID: "over", Counts: over}}, Routed, Counts); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "count 7") {
		t.Fatalf("a count of 1e34: %v", err)
	}
}

// TestBehaviourSparseRatesAndJitteredTimers: the forecast is the expected
// count, so an hour of it holds the hour's volume where the median of
// every minute is 0: a Poisson rate under one a minute is forecast at
// that rate (within 10% over the hour), and a timer whose pulses come a
// minute early or late at random gets its hour within 15%. (Issue
// "Forecasts that add up"; several seeds and rates, not picked to pass.)
func TestBehaviourSparseRatesAndJitteredTimers(t *testing.T) {
	answer := behaviour(t)
	t.Run("Poisson rates", func(t *testing.T) {
		// p_invoke x size alone gave 0.24-0.26 a minute for 0.3 and
		// 0.44-0.52 for 0.6; the sparse rule's steady test answers the
		// rate. 10% is about two standard errors of a day's mean at 0.3
		// (a rate much sparser cannot be known that well from one day).
		// Rates from 1,000 to 30,000 a day (still the sparse rule's)
		// come through the same test; see package steady.
		for _, rate := range []float64{0.3, 0.6, 1.5} {
			for seed := range 5 {
				rng := rand.New(rand.NewPCG(uint64(seed), 7))
				fc, _ := answer(draw.Minutes(rng, 1440, draw.Constant(rate)))
				if got := sum(fc) / 60; math.Abs(got-rate) > 0.1*rate {
					t.Errorf("Poisson %g a minute (seed %d): %.3f a minute forecast", rate, seed, got)
				}
			}
		}
	})
	for _, c := range []struct{ period, size int }{{7, 200}, {10, 50}, {13, 500}} {
		for seed := range 3 {
			rng := rand.New(rand.NewPCG(uint64(seed), 11))
			d := make([]float64, 1500)
			for p := 3; p < len(d); p += c.period {
				d[p+rng.IntN(3)-1] += float64(c.size)
			}
			want := 0.0
			for _, v := range d[1440:] {
				want += v
			}
			fc, _ := answer(d[:1440])
			if got := sum(fc); math.Abs(got-want) > 0.15*want {
				t.Errorf("a %d-call timer every %d minutes, jittered (seed %d): %.0f in the hour forecast, %.0f come", c.size, c.period, seed, got, want)
			}
		}
	}
}

func TestTimersPInvokeHasTheTimersFloorInEveryCall(t *testing.T) {
	// p_invoke alone (the minutely loop's and KEDA's IsActive call) and
	// with counts: every minute ahead at least the share of the timer's
	// last cycles invoked then, so each pulse of an exact timer is 1.
	f := loadSet(t, fixture.CopyModels(t))
	day := timerDay(1440+60, 11, 4, 25, nil)
	for _, outs := range []Outputs{PInvoke, Counts | PInvoke} {
		res, err := f.Predict(context.Background(), []Request{{ID: "t", Counts: day[:1440]}}, Routed, outs)
		if err != nil {
			t.Fatal(err)
		}
		if res[0].Timer == nil {
			t.Fatalf("outputs %v: an exact 11-minute timer not detected", outs)
		}
		for h, v := range day[1440:] {
			if p := res[0].PInvoke[h]; v > 0 && p != 1 {
				t.Errorf("outputs %v: pulse minute %d p_invoke %v, want 1 (every cycle invoked it)", outs, h+1, p)
			}
		}
	}
	// DenseOnly serves no timers' expert: the models alone
	res, err := f.Predict(context.Background(), []Request{{ID: "t", Counts: day[:1440]}}, DenseOnly, PInvoke)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Timer != nil {
		t.Fatal("the dense-only mode marked a timer")
	}
}

// TestSparseFunctionsExpectedCountIsPInvokeTimesTheirSize: under the
// manifest's sparse rule a small function's forecast is its p_invoke
// times the mean size of its recent invocations, whether or not the call
// asked for p_invoke; a busy function and a timer keep the count models'
// and the timers' answers, and a set without the rule answers as before.
func TestSparseFunctionsExpectedCountIsPInvokeTimesTheirSize(t *testing.T) {
	// the stop model moves p_invoke after the rule has read it
	// (TestStopModelAnswersTheNextMinute): compared here without it
	withoutDir, onDir := fixture.CopyModels(t), fixture.CopyModels(t)
	fixture.EditManifest(t, withoutDir, func(m map[string]any) { delete(m, "sparse"); delete(m, "stop") })
	fixture.EditManifest(t, onDir, func(m map[string]any) { delete(m, "stop") })
	on, off := loadSet(t, onDir), loadSet(t, withoutDir)
	cat, _ := on.Catalog()
	sp := cat.Manifest.Sparse
	if sp == nil {
		t.Fatal("the shipped set has no sparse rule")
	}
	rng := rand.New(rand.NewPCG(3, 5))
	small := burstyDay(rng) // no steady rate
	busy := make([]float64, 1440)
	for i := range busy {
		busy[i] = 400 + float64(rng.IntN(50))
	}
	reqs := []Request{{ID: "small", Counts: small}, {ID: "busy", Counts: busy}, {ID: "timer", Counts: timerDay(1440, 15, 6, 3, nil)}}
	both := mustPredict(t, on, reqs, Counts|PInvoke)
	countsOnly := mustPredict(t, on, reqs, Counts)
	before := mustPredict(t, off, reqs, Counts|PInvoke)
	if _, ok := steady.Detect(small); ok {
		t.Fatal("the bursty small function has a steady rate")
	}
	size, ok := sp.MeanWhenInvoked(small)
	if !ok || both[0].Sparse == nil || both[0].Sparse.SizeWhenInvoked != size || both[0].Sparse.Steady != nil {
		t.Fatalf("the small function: rule %v size %v, answered %+v", ok, size, both[0].Sparse)
	}
	for h, p := range both[0].PInvoke {
		if want := p * float32(size); both[0].Forecast[h] != want || countsOnly[0].Forecast[h] != want {
			t.Fatalf("minute %d: forecast %v (counts only %v), want p_invoke %v x %v", h+1, both[0].Forecast[h], countsOnly[0].Forecast[h], p, size)
		}
	}
	if slices.Equal(both[0].Forecast, before[0].Forecast) {
		t.Fatal("the rule changed nothing for the small function")
	}
	if !slices.Equal(both[0].Median, before[0].Median) {
		t.Fatal("the rule changed the median")
	}
	for i := 1; i < len(reqs); i++ {
		if both[i].Sparse != nil || !slices.Equal(both[i].Forecast, before[i].Forecast) {
			t.Errorf("%s: answered by the rule (%+v) or changed", reqs[i].ID, both[i].Sparse)
		}
	}
	if both[2].Timer == nil {
		t.Fatal("the timer was not detected")
	}
	if countsOnly[0].PInvoke != nil {
		t.Fatal("a counts-only call answered p_invoke")
	}
}

// TestSparseSteadyRateIsTheForecast: with the sparse rule's steady test on
// (manifest sparse.steady), a small function whose day one Poisson rate
// explains is forecast at that rate in every minute, whether or not the
// call asked for p_invoke; a bursty one keeps p_invoke times its size;
// the median is the count models' either way; with the test off the
// steady function is answered by p_invoke times its size.
func TestSparseSteadyRateIsTheForecast(t *testing.T) {
	edit := func(on bool) *Forecaster {
		dir := fixture.CopyModels(t)
		fixture.EditManifest(t, dir, func(m map[string]any) {
			sp := m["sparse"].(map[string]any)
			sp["steady"] = on
			delete(m, "stop") // it moves p_invoke after the rule has read it
		})
		return loadSet(t, dir)
	}
	on, off := edit(true), edit(false)
	rng := rand.New(rand.NewPCG(8, 1))
	rate := draw.Minutes(rng, 1440, draw.Constant(0.4))
	bursty := burstyDay(rng)
	want, ok := steady.Detect(rate)
	if !ok {
		t.Fatal("a Poisson rate of 0.4 a minute is not steady")
	}
	reqs := []Request{{ID: "rate", Counts: rate}, {ID: "bursty", Counts: bursty}}
	for _, outs := range []Outputs{Counts, Counts | PInvoke} {
		got := mustPredict(t, on, reqs, outs)
		was := mustPredict(t, off, reqs, outs|PInvoke)
		r := got[0]
		if r.Sparse == nil || r.Sparse.Steady == nil || *r.Sparse.Steady != want {
			t.Fatalf("outputs %v: the steady function answered %+v, want steady %+v", outs, r.Sparse, want)
		}
		for h, v := range r.Forecast {
			if v != float32(want.PerMinute) {
				t.Fatalf("outputs %v: minute %d forecast %v, want the rate %v", outs, h+1, v, want.PerMinute)
			}
		}
		if !slices.Equal(r.Median, was[0].Median) {
			t.Fatalf("outputs %v: the steady rate changed the median", outs)
		}
		if was[0].Sparse == nil || was[0].Sparse.Steady != nil {
			t.Fatalf("the test off: %+v", was[0].Sparse)
		}
		for h, p := range was[0].PInvoke {
			if was[0].Forecast[h] != p*float32(was[0].Sparse.SizeWhenInvoked) {
				t.Fatalf("the test off: minute %d is not p_invoke x size", h+1)
			}
		}
		if b := got[1]; b.Sparse == nil || b.Sparse.Steady != nil || !slices.Equal(b.Forecast, was[1].Forecast) {
			t.Fatalf("outputs %v: the bursty function answered %+v, or differently from the test off", outs, b.Sparse)
		}
	}
}

// burstyDay is a small function's day of calls in bursts of about ten
// minutes at irregular times (neither steady nor a timer).
func burstyDay(rng *rand.Rand) []float64 {
	d := make([]float64, 1440)
	for start := rng.IntN(60); start < len(d); start += 40 + rng.IntN(150) {
		for m := start; m < min(start+10, len(d)); m++ {
			d[m] = float64(draw.Poisson(rng, 1.5))
		}
	}
	return d
}

// TestSparseRuleLeavesSilencesToTheLevel: a small function in a silence
// longer than any it shows, with calls still inside the rule's look, is
// not answered by p_invoke (the hazard's) times the size its calls had
// before the silence: its expected count is the level, as the mean
// trees leave it (Set.inSilence).
func TestSparseRuleLeavesSilencesToTheLevel(t *testing.T) {
	dir := fixture.CopyModels(t)
	// a look of 8 hours (a candidate choose-volume tries) reaches calls
	// made hours before the silence
	fixture.EditManifest(t, dir, func(m map[string]any) { m["sparse"].(map[string]any)["look"] = 480 })
	f := loadSet(t, dir)
	cat, _ := f.Catalog()
	sp := cat.Manifest.Sparse
	d := make([]float64, 1440)
	for i := range 1440 - sp.Look/2 { // busy until half the look ago
		d[i] = 5
	}
	if _, ok := sp.MeanWhenInvoked(d); !ok {
		t.Fatal("the rule's look holds no call: the case tests nothing")
	}
	res, err := f.Predict(context.Background(), []Request{{ID: "quiet", Counts: d}}, Routed, Counts|PInvoke)
	if err != nil {
		t.Fatal(err)
	}
	r := res[0]
	if r.Sparse != nil || r.Silence == 0 || !slices.Equal(r.Forecast, r.Median) {
		t.Fatalf("sparse %+v, silence %d, forecast %v (median %v): want the level's", r.Sparse, r.Silence, sum32(r.Forecast), sum32(r.Median))
	}
}

// mustPredict is f's routed answer to reqs for outs; an error fails the test.
func mustPredict(t *testing.T, f *Forecaster, reqs []Request, outs Outputs) []Result {
	t.Helper()
	res, err := f.Predict(context.Background(), reqs, Routed, outs)
	if err != nil {
		t.Fatal(err)
	}
	return res
}
