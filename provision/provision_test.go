package provision

import "testing"

// day builds a day with invocations at the given 1-based minutes.
func day(minutes ...int) []float64 {
	c := make([]float64, End)
	for _, m := range minutes {
		c[m-1] = 1
	}
	return c
}

func TestKeepAliveByHand(t *testing.T) {
	// Invocations at 1075 (history), 1090 and 1200.
	// Warm: 1081..1085 (within 10 of 1075), 1091..1100, 1201..1210.
	// Cold: 1090 (15 after 1075), 1200. Idle: 5 + 10 + 10 = 25.
	o := Simulate(day(1075, 1090, 1200), KeepAlive(day(1075, 1090, 1200), 10))
	if o.ColdStarts != 2 || o.IdleMinutes != 25 || o.InvokedMinutes != 2 || o.ColdStartRate != 1 {
		t.Fatalf("got %+v", o)
	}
	// Every minute invoked: never cold after the first, never idle.
	all := make([]float64, End)
	for i := range all {
		all[i] = 3
	}
	o = Simulate(all, KeepAlive(all, 10))
	if o.ColdStarts != 0 || o.IdleMinutes != 0 || o.InvokedMinutes != End-Start+1 {
		t.Fatalf("busy function: %+v", o)
	}
}

func TestHybridHistogramLearnsPeriod(t *testing.T) {
	// A strict 30-minute timer: idle times are all 29 minutes. The policy
	// pre-warms at 26 idle minutes (29 * 0.9, floored) and keeps warm
	// until 32 (29 * 1.1, ceiled): every invocation is warm, and each
	// period wastes idle minutes 26, 27, 28 (the invocation at idle 29
	// resets the clock).
	var ms []int
	for m := 30; m <= End; m += 30 {
		ms = append(ms, m)
	}
	c := day(ms...)
	pw, ka, fallback := HybridWindows(c, 1080)
	if fallback || pw != 26 || pw+ka != 32 {
		t.Fatalf("windows %d, %d, fallback %v; want 26, 32-26, false", pw, ka, fallback)
	}
	warm, _ := HybridHistogram(c, 1080)
	o := Simulate(c, warm)
	if o.ColdStarts != 0 || o.InvokedMinutes != 12 {
		t.Fatalf("got %+v", o)
	}
	if o.IdleMinutes != 12*3 {
		t.Fatalf("idle %d, want %d", o.IdleMinutes, 12*3)
	}
}

func TestHybridFallsBackWithFewIdleTimes(t *testing.T) {
	_, ka, fallback := HybridWindows(day(100, 500), 1080)
	if !fallback || ka != HistogramRange {
		t.Fatalf("keep-alive %d fallback %v, want %d true", ka, fallback, HistogramRange)
	}
}

func TestForecastPrewarm(t *testing.T) {
	f := make([][]float64, 6)
	for i := range f {
		f[i] = make([]float64, 60)
	}
	f[0][9] = 0.9 // minute 1090
	f[2][0] = 0.2 // minute 1201, below a 0.5 threshold
	c := day(1090, 1201)
	o := Simulate(c, ForecastPrewarm(f, 0.5))
	if o.ColdStarts != 1 || o.IdleMinutes != 0 {
		t.Fatalf("got %+v", o)
	}
	o = Simulate(c, ForecastPrewarm(f, 0.1))
	if o.ColdStarts != 0 || o.IdleMinutes != 0 {
		t.Fatalf("threshold 0.1: got %+v", o)
	}
}

func TestColdStartsAtIdleInterpolates(t *testing.T) {
	curve := []ThresholdPoint{
		{Threshold: 0.1, Outcome: Outcome{ColdStarts: 300, IdleMinutes: 70}},
		{Threshold: 0.05, Outcome: Outcome{ColdStarts: 200, IdleMinutes: 90}},
		{Threshold: 0.02, Outcome: Outcome{ColdStarts: 100, IdleMinutes: 120}},
	}
	cases := []struct {
		idle int
		want float64
		ok   bool
	}{
		{80, 250, true},  // halfway between the first two points
		{90, 200, true},  // on a point
		{105, 150, true}, // halfway between the last two
		{60, 0, false},   // below the curve
		{130, 0, false},  // beyond it
	}
	for _, tc := range cases {
		got, ok := ColdStartsAtIdle(curve, tc.idle)
		if ok != tc.ok || got != tc.want {
			t.Errorf("idle %d: %v %v, want %v %v", tc.idle, got, ok, tc.want, tc.ok)
		}
	}
}
