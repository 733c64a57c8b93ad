package silence

import "testing"

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
