package silence

import (
	"math"
	"testing"

	"github.com/mesp-project/mesp/internal/fixture"
)

func TestGap(t *testing.T) {
	cases := []struct {
		name          string
		counts        []float64
		idle          int
		unprecedented bool
	}{
		{"silent", make([]float64, 1440), 1440, true},
		{"invoked last minute", []float64{0, 1, 0, 0, 1}, 0, false},
		{"gap as long as before", []float64{1, 0, 0, 1, 0, 0}, 2, false},
		{"gap longer than before", []float64{1, 0, 1, 0, 0}, 2, true},
		{"one call, then silence", []float64{0, 0, 3, 0, 0, 0}, 3, true},
	}
	for _, tc := range cases {
		idle, un := Gap(tc.counts)
		if idle != tc.idle || un != tc.unprecedented {
			t.Errorf("%s: idle %d unprecedented %v, want %d %v", tc.name, idle, un, tc.idle, tc.unprecedented)
		}
	}
}

func TestFitCountsOnlyWhatTheDataSupports(t *testing.T) {
	// day 0: silent until minute 100, then invoked: the silence before a
	// day's first invocation is not counted (it was chosen for being
	// invoked). day 1: invoked at minute 1, then silent to the end: every
	// minute is at risk, none an event (censored at the end, never forced
	// to close). day 2: invoked at 1 and 3 (a 1-minute gap closed).
	d0 := make([]float64, 200)
	d0[99] = 1
	d1 := make([]float64, 200)
	d1[0] = 1
	d2 := make([]float64, 5)
	d2[0], d2[2] = 1, 1
	h := Fit([][]float64{d0, d1, d2})
	var atRisk, events int
	for _, b := range h.Bins {
		atRisk += b.AtRisk
		events += b.Events
	}
	// d0: gaps 1..100 after minute 100 (minutes 101..200 at gaps 0..99:
	// gap 0 is not a silence): 99; d1: gaps 1..198: 198; d2: minute 3 at
	// gap 1 (event), then minute 5 at gap 1 (not longer than the closed
	// gap of 1).
	if atRisk != 99+198+1 || events != 1 {
		t.Fatalf("at risk %d, events %d; want %d and 1", atRisk, events, 99+198+1)
	}
	if p := h.At(1); p != 1.0/3 {
		t.Errorf("hazard at gap 1: %v, want 1/3 (d0 and d1 at risk, d2 invoked)", p)
	}
	if p := h.At(5000); p != 0 {
		t.Errorf("hazard beyond the longest bin: %v, want the last bin's 0", p)
	}
}

func TestPastClassesSeparateHowFarAGapRanPastTheFunctionsOwn(t *testing.T) {
	// A function called every minute, then silent: every unprecedented gap
	// of it is past 10x its longest (0). One called every 10 minutes whose
	// gaps then grow to 12: past 1.5x at most. Both wake at gap 12.
	everyMinute := make([]float64, 300)
	for i := range 100 {
		everyMinute[i] = 1
	}
	everyMinute[112] = 1
	tenApart := make([]float64, 300)
	for i := 0; i < 100; i += 10 {
		tenApart[i] = 1
	}
	tenApart[90+13] = 1
	h := Fit([][]float64{everyMinute, tenApart})
	if err := h.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(h.Past) != len(PastRatios) {
		t.Fatalf("%d past classes, want %d", len(h.Past), len(PastRatios))
	}
	var pooled, past int
	for _, b := range h.Bins {
		pooled += b.AtRisk
	}
	for _, p := range h.Past {
		for _, b := range p.Bins {
			past += b.AtRisk
		}
	}
	if pooled != past || pooled == 0 {
		t.Fatalf("the past classes hold %d decisions, the pooled bins %d: every decision is in one class", past, pooled)
	}
	// everyMinute wakes at gap 12 after a longest of 0 (class 10x);
	// tenApart's second call closes its first gap (no gap closed before:
	// the last class) and it wakes at gap 12 after a longest of 9 (ratio
	// 1.2: class 0).
	events := make([]int, len(h.Past))
	for c, p := range h.Past {
		for _, b := range p.Bins {
			events[c] += b.Events
		}
	}
	if events[0] != 1 || events[3] != 2 || events[1]+events[2] != 0 {
		t.Fatalf("events by class %v, want one under 1.5x and two past 10x", events)
	}
	if c := h.pastClass(11, 0); c != 3 {
		t.Fatalf("gap 11 after a longest 0: class %d, want 3 (10x or more)", c)
	}
	if c := h.pastClass(12, 9); c != 0 {
		t.Fatalf("gap 12 after a longest 9: class %d, want 0 (under 1.5x)", c)
	}
	if c := h.pastClass(5, -1); c != len(PastRatios)-1 {
		t.Fatalf("a history that never closed a gap: class %d, want the last", c)
	}
}

func TestAtPastAnswersWithThePooledBinWhereItsClassIsThin(t *testing.T) {
	h := Hazard{
		Bins: []Bin{{Gap: 1, P: 0.2, AtRisk: 5000}, {Gap: 60, P: 0.01, AtRisk: 5000}},
		Past: []PastBins{
			{Ratio: 0, Bins: []Bin{{Gap: 1, P: 0.3, AtRisk: MinAtRisk}, {Gap: 60, P: 0.5, AtRisk: MinAtRisk - 1}}},
			{Ratio: 10, Bins: []Bin{{Gap: 1, P: 0.05, AtRisk: 1000}, {Gap: 60, P: 0.002, AtRisk: 1000}}},
		},
	}
	cases := []struct {
		g, longest int
		want       float64
	}{
		{5, 4, 0.3},      // ratio 1: class 0, bin 1 holds MinAtRisk
		{70, 60, 0.01},   // class 0, bin 60 too thin: pooled
		{70, 5, 0.002},   // ratio 11.7: class 10x
		{30, -1, 0.05},   // never closed a gap: the last class
		{5000, 0, 0.002}, // beyond the last bin: the last bin
		{1, 0, 0.3},      // ratio 1: class 0, first bin
	}
	for _, tc := range cases {
		if got := h.AtPast(tc.g, tc.longest); got != tc.want {
			t.Errorf("AtPast(%d, %d) = %v, want %v", tc.g, tc.longest, got, tc.want)
		}
	}
	if got := (Hazard{Bins: h.Bins}).AtPast(70, 5); got != 0.01 {
		t.Errorf("a table without past classes: %v, want the pooled 0.01", got)
	}
	bad := h
	bad.Past = []PastBins{{Ratio: 1, Bins: h.Past[0].Bins}}
	if bad.Validate() == nil {
		t.Error("past classes not starting at ratio 0 passed Validate")
	}
	bad.Past = []PastBins{h.Past[1], h.Past[0]}
	if bad.Validate() == nil {
		t.Error("decreasing past ratios passed Validate")
	}
}

func TestNonIncreasingPoolsAdjacentViolators(t *testing.T) {
	bin := func(events, atRisk int) Bin { return Bin{Events: events, AtRisk: atRisk} }
	cases := []struct {
		name string
		in   []Bin
		want []float64
	}{
		{"already falling: the rates", []Bin{bin(30, 100), bin(20, 100), bin(1, 100)}, []float64{0.3, 0.2, 0.01}},
		// 0.0115 then 0.0158: pooled by their decisions, 220 / 15800
		{"a bump pooled with the bin before it", []Bin{bin(300, 1000), bin(92, 8000), bin(128, 7800), bin(5, 1000)},
			[]float64{0.3, 220.0 / 15800, 220.0 / 15800, 0.005}},
		// 0.1 < 0.2 pools to 0.15, still under 0.3: the second violator
		// pools the first block on (0.3 > 0.15, no further)
		{"a rise after the first bins", []Bin{bin(30, 100), bin(10, 100), bin(20, 100)}, []float64{0.3, 0.15, 0.15}},
		// a block that grows must be compared again with the one before
		{"pooling cascades back", []Bin{bin(20, 100), bin(10, 100), bin(60, 100)}, []float64{0.3, 0.3, 0.3}},
		{"bins no decision reached keep 0", []Bin{bin(10, 100), bin(0, 0), bin(20, 100)}, []float64{0.15, 0, 0.15}},
	}
	for _, c := range cases {
		nonIncreasing(c.in)
		for k, b := range c.in {
			if math.Abs(b.P-c.want[k]) > 1e-12 {
				t.Errorf("%s: bin %d P %v, want %v", c.name, k, b.P, c.want[k])
			}
		}
	}
}

// TestFittedHazardNeverRises: on real days every class's hazard falls or
// stays with the gap, and each class's decisions and events are kept
// (the expected events, P times AtRisk summed, equal the events).
func TestFittedHazardNeverRises(t *testing.T) {
	var days [][]float64
	for _, f := range fixture.Rows(t) {
		days = append(days, f.Counts)
	}
	h := Fit(days)
	classes := [][]Bin{h.Bins}
	for _, p := range h.Past {
		classes = append(classes, p.Bins)
	}
	rose := false // the raw rates rise somewhere: the test has work to see
	for _, bs := range classes {
		prev := 1.0
		for _, b := range bs {
			if b.AtRisk > 0 {
				r := float64(b.Events) / float64(b.AtRisk)
				rose = rose || r > prev
				prev = r
			}
		}
	}
	if !rose {
		t.Fatal("the fixture's raw hazard never rises")
	}
	for c, bs := range classes {
		prev, expected, events := 1.0, 0.0, 0
		for _, b := range bs {
			if b.AtRisk == 0 {
				continue
			}
			if b.P > prev {
				t.Fatalf("class %d: hazard %v at gap %d after %v", c, b.P, b.Gap, prev)
			}
			prev = b.P
			expected += b.P * float64(b.AtRisk)
			events += b.Events
		}
		if math.Abs(expected-float64(events)) > 1e-6 {
			t.Errorf("class %d: %v events expected from the fit, %d counted", c, expected, events)
		}
	}
}
