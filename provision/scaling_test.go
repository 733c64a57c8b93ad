package provision

import (
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
)

// dayWith is a whole day of zeros with counts set at the given 1-based minutes.
func dayWith(at map[int]float64) []float64 {
	d := make([]float64, End)
	for m, v := range at {
		d[m-1] = v
	}
	return d
}

// replicasAt is r's value for 1-based minute m.
func replicasAt(r []int, m int) int { return r[m-Start] }

func TestReactiveOnHandCases(t *testing.T) {
	const s = Start + 100 // a spike's minute
	cases := []struct {
		name   string
		counts map[int]float64
		window int
		want   map[int]int // minute: replicas
	}{
		// the spike of 150 (3 replicas) is seen a minute late and gone the
		// minute after without a window
		{"a spike, no window", map[int]float64{s: 150}, 0, map[int]int{s: 0, s + 1: 3, s + 2: 0}},
		// with window 5 the 3 replicas are held exactly 5 more minutes
		{"a spike, window 5", map[int]float64{s: 150}, 5, map[int]int{s: 0, s + 1: 3, s + 6: 3, s + 7: 0}},
		// scale-up is immediate even inside a window: the larger wins
		{"a step up", map[int]float64{s: 30, s + 1: 200, s + 2: 200}, 2, map[int]int{s + 1: 1, s + 2: 4, s + 3: 4, s + 5: 4, s + 6: 0}},
		{"a silence", map[int]float64{}, 10, map[int]int{Start: 0, s: 0, End: 0}},
	}
	for _, c := range cases {
		r := Reactive(dayWith(c.counts), c.window, Target)
		for m, want := range c.want {
			if got := replicasAt(r, m); got != want {
				t.Errorf("%s: minute %d has %d replicas, want %d", c.name, m-s, got, want)
			}
		}
	}
}

func TestSimulateScalingByHand(t *testing.T) {
	counts := dayWith(map[int]float64{Start: 130, Start + 1: 50, Start + 2: 0})
	replicas := make([]int, End-Start+1)
	replicas[0], replicas[1], replicas[2] = 2, 1, 1 // 120 of 130: 10 short; 60 for 50; 1 idle
	got := SimulateScaling(counts, replicas, Target)
	want := ScalingOutcome{Deficit: 10, ReplicaMinutes: 4, UnderMinutes: 1, OverReplicaMinutes: 1, Invocations: 180}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if !Busy(counts, Target) || Busy(dayWith(map[int]float64{Start: 60}), Target) {
		t.Fatal("busy: a day needing 3 replicas once is busy, one needing 1 is not")
	}
}

// TestReactiveNeverReadsTheMinuteItDecides: changing minutes m.. never
// changes the replicas of minute m.
func TestReactiveNeverReadsTheMinuteItDecides(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	d := make([]float64, End)
	for i := range d {
		d[i] = float64(rng.IntN(400))
	}
	for _, w := range ReactiveWindows {
		base := Reactive(d, w, Target)
		for _, m := range []int{Start, Start + 1, Start + 180, End} {
			changed := slices.Clone(d)
			for k := m - 1; k < End; k++ {
				changed[k] = float64(rng.IntN(10000))
			}
			if got := Reactive(changed, w, Target); !slices.Equal(got[:m-Start+1], base[:m-Start+1]) {
				t.Fatalf("window %d: changing minutes %d.. changed replicas up to minute %d", w, m, m)
			}
		}
	}
}

func TestEvaluateScalingScoresBusyFunctionsApart(t *testing.T) {
	busy := dayWith(map[int]float64{Start + 10: 300, Start + 11: 300})
	quiet := dayWith(map[int]float64{Start + 10: 5})
	perfect := func(d []float64) []float64 { return slices.Clone(d[Start-1 : End]) }
	// each minute's forecast of itself alone: every lead sizes for it
	ahead := func(d []float64) [][]float64 {
		out := make([][]float64, End-Start+1)
		for m := range out {
			out[m] = []float64{d[Start-1+m]}
		}
		return out
	}
	rep := EvaluateScaling(ScalingInputs{Days: [][]float64{busy, quiet}, Target: Target,
		MespMedian: [][]float64{perfect(busy), perfect(quiet)}, MespMean: [][][]float64{ahead(busy), ahead(quiet)}})
	if rep.Functions != 1 || rep.All != 2 || len(rep.Reactive) != len(ReactiveWindows) || len(rep.Mesp) != 1+len(Leads)+2*len(HeldWindows) {
		t.Fatalf("report %+v", rep)
	}
	// a forecast that knows each minute has no deficit and no idle replica
	if m := rep.Mesp[0]; m.Deficit != 0 || m.OverReplicaMinutes != 0 || m.ReplicaMinutes != 10 || *m.Quantile != 0.5 || m.All.ReplicaMinutes != 11 {
		t.Fatalf("perfect forecast: %+v", m)
	}
	// reactive lags a minute: the first 300 is short by 300 on the busy one
	if r := rep.Reactive[0]; r.Deficit != 300 || *r.Window != 0 {
		t.Fatalf("reactive, window 0: %+v", r)
	}
	if c := rep.Coverage["0.5"]; c != 1 {
		t.Fatalf("coverage of a perfect median %v, want 1", c)
	}
}

// TestLeadSizesForTheComingMinutes: a policy with lead L provisions minute
// m for the largest forecast of minutes m..m+L-1 made at m-1; lead 1 is
// the minute alone.
func TestLeadSizesForTheComingMinutes(t *testing.T) {
	// at every minute the forecast of the third minute ahead is 300
	ahead := make([][]float64, End-Start+1)
	for i := range ahead {
		ahead[i] = []float64{10, 10, 300, 10, 10}
	}
	for _, c := range []struct{ lead, want int }{{1, 1}, {2, 1}, {3, 5}, {5, 5}, {10, 5}} {
		if got := FromForecastAhead(ahead, c.lead, Target); got[0] != c.want || got[len(got)-1] != c.want {
			t.Errorf("lead %d: %d replicas, want %d", c.lead, got[0], c.want)
		}
	}
	busy := dayWith(map[int]float64{Start + 10: 300})
	rep := EvaluateScaling(ScalingInputs{Days: [][]float64{busy}, Target: Target, MespMean: [][][]float64{ahead}})
	var leads []int
	for _, p := range rep.Mesp {
		if p.Window == nil { // the held points are a minute ahead
			leads = append(leads, p.Lead)
		}
	}
	if !slices.Equal(leads, Leads) {
		t.Fatalf("mesp points' leads %v, want %v", leads, Leads)
	}
}

func TestAtBudgetByHand(t *testing.T) {
	pt := func(rm int, d float64) ScalingPoint {
		return ScalingPoint{ScalingOutcome: ScalingOutcome{ReplicaMinutes: rm, Deficit: d}}
	}
	pts := []ScalingPoint{pt(100, 50), pt(200, 30), pt(300, 10)}
	cases := []struct {
		budget       int
		want         float64
		interpolated bool
		ok           bool
	}{
		{200, 30, false, true}, // a point on the budget
		{250, 20, true, true},  // halfway between 200 and 300
		{400, 10, false, true}, // every point within it
		{50, 0, false, false},  // none within it
	}
	for _, c := range cases {
		d, interp, ok := atBudget(pts, c.budget)
		if ok != c.ok || ok && (d != c.want || interp != c.interpolated) {
			t.Errorf("budget %d: %v %v %v, want %v %v %v", c.budget, d, interp, ok, c.want, c.interpolated, c.ok)
		}
	}
}

// TestQuantileCurvesAndCoverage: each served quantile is a point per lead
// on MESP's curve and one (lead 1) on the peer's; coverage counts, on the
// busy functions, the minutes whose count is at most the quantile
// forecast made a minute before: a forecast of 100 every minute covers
// every minute of a day whose busy minutes are 60 and 300 except the 300.
func TestQuantileCurvesAndCoverage(t *testing.T) {
	busy := dayWith(map[int]float64{Start + 10: 300, Start + 20: 60})
	flat := func(v float64) [][][]float64 {
		out := make([][]float64, End-Start+1)
		for m := range out {
			out[m] = []float64{v, v}
		}
		return [][][]float64{out}
	}
	// 0.95, between the served levels, is scored floored and for coverage
	// alone
	qs := []QuantileAhead{{Q: 0.9, Ahead: flat(100)}, {Q: 0.95, Ahead: flat(200), Interpolated: true}, {Q: 0.99, Ahead: flat(300)}}
	rep := EvaluateScaling(ScalingInputs{Days: [][]float64{busy}, Target: Target, MespQuantiles: qs, PeerQuantiles: qs[:1]})
	n := float64(End - Start + 1)
	if len(rep.Mesp) != 2*len(Leads)+2*len(HeldWindows) || len(rep.Peer) != 1 || *rep.Peer[0].Quantile != 0.9 || rep.Peer[0].Lead != 1 {
		t.Fatalf("mesp %d points, peer %+v", len(rep.Mesp), rep.Peer)
	}
	for _, p := range rep.Mesp {
		if p.Quantile != nil && *p.Quantile == 0.95 {
			t.Fatalf("an interpolated level among the lead and held points: %+v", p)
		}
	}
	between := 0
	for _, p := range rep.MespFloored {
		if *p.Quantile == 0.95 {
			if !p.Interpolated {
				t.Fatalf("floored q0.95 not marked interpolated: %+v", p)
			}
			between++
		}
	}
	if len(rep.MespFloored) != 3*(1+len(HeldWindows)) || between != 1+len(HeldWindows) {
		t.Fatalf("%d floored points, %d at q0.95", len(rep.MespFloored), between)
	}
	if got := rep.Coverage["0.95"]; got != (n-1)/n {
		t.Errorf("coverage of 200 a minute: %v", got)
	}
	if got, want := rep.Coverage["0.9"], (n-1)/n; got != want {
		t.Errorf("coverage of 100 a minute: %v, want %v", got, want)
	}
	if got := rep.Coverage["0.99"]; got != 1 {
		t.Errorf("coverage of 300 a minute: %v, want 1", got)
	}
	if got := rep.PeerCoverage["0.9"]; got != (n-1)/n {
		t.Errorf("peer coverage %v", got)
	}
	// 100 a minute is two replicas: the 300 is short by 180, 720 replica-minutes
	if p := rep.Mesp[0]; p.Deficit != 180 || p.ReplicaMinutes != 2*int(n) || *p.Quantile != 0.9 || p.Lead != 1 {
		t.Errorf("q0.9 lead 1: %+v", p)
	}
}

// TestCalibrateScaleByHand: the smallest factor whose floored answer
// covers the share asked, counted by hand.
func TestCalibrateScaleByHand(t *testing.T) {
	y := []float64{0, 2, 4, 10, 30}
	lower := []float64{0, 3, 0, 0, 0}
	base := []float64{1, 1, 2, 4, 5}
	// covered by the floor: minutes 1 and 2; ratios of the rest 2, 2.5, 6
	cases := []struct{ q, c, cov float64 }{
		{0.4, 0.5, 0.4},            // the floor alone: the lowest factor
		{0.6, 2 * (1 + 1e-6), 0.6}, // one more: 4 <= 2 x 2
		{0.8, 2.5 * (1 + 1e-6), 0.8},
		{1, 6 * (1 + 1e-6), 1},
		{0.99, 6 * (1 + 1e-6), 1},
	}
	for _, c := range cases {
		got, cov := CalibrateScale(y, lower, base, c.q, 0.5, 8)
		if math.Abs(got-c.c) > 1e-12 || cov != c.cov {
			t.Errorf("q %v: factor %v covering %v, want %v covering %v", c.q, got, cov, c.c, c.cov)
		}
	}
	// out of reach within the bounds: the upper bound, and what it covers
	if got, cov := CalibrateScale(y, lower, base, 1, 0.5, 3); got != 3 || cov != 0.8 {
		t.Errorf("bounded: %v covering %v, want 3 covering 0.8", got, cov)
	}
}

// TestSharpestScaleByHand: each base is calibrated to the level, and the
// one whose calibrated answer sums least wins; a tie goes to the first.
func TestSharpestScaleByHand(t *testing.T) {
	y := []float64{1, 2, 3, 4}
	lower := make([]float64, len(y))
	even := []float64{2, 2, 2, 2} // calibrated at 1.5 for 0.75 (sum 12), 2 for 1 (sum 16)
	cases := []struct {
		name  string
		bases [][]float64
		q     float64
		k     int
		c     float64
	}{
		{"the shape fits: sum 10.5", [][]float64{{1, 2, 3, 4.5}, even}, 0.75, 0, 1},
		{"all covered, still sharper", [][]float64{{1, 2, 3, 4.5}, even}, 1, 0, 1},
		{"one wide minute: sum 46 against 12", [][]float64{{1, 2, 3, 40}, even}, 0.75, 1, 1.5},
		{"the even base first", [][]float64{even, {1, 2, 3, 40}}, 0.75, 0, 1.5},
		{"a tie", [][]float64{even, even}, 1, 0, 2},
	}
	for _, c := range cases {
		k, got := SharpestScale(y, lower, c.bases, c.q, 0.05, 10)
		if k != c.k || math.Abs(got-c.c*(1+1e-6)) > 1e-9 {
			t.Errorf("%s: base %d at %v, want base %d at %v", c.name, k, got, c.k, c.c)
		}
		if want, _ := CalibrateScale(y, lower, c.bases[k], c.q, 0.05, 10); got != want {
			t.Errorf("%s: factor %v, its base calibrates at %v", c.name, got, want)
		}
	}
}

// TestStabilizedHoldsExactlyItsWindow: a desire of 3 at one minute is
// held for exactly window minutes after it, and a higher one starts at
// once.
func TestStabilizedHoldsExactlyItsWindow(t *testing.T) {
	desired := []int{0, 3, 0, 0, 0, 0, 5, 1, 1}
	for _, c := range []struct {
		window int
		want   []int
	}{
		{0, []int{0, 3, 0, 0, 0, 0, 5, 1, 1}},
		{2, []int{0, 3, 3, 3, 0, 0, 5, 5, 5}},
		{5, []int{0, 3, 3, 3, 3, 3, 5, 5, 5}},
	} {
		if got := Stabilized(desired, c.window); !slices.Equal(got, c.want) {
			t.Errorf("window %d: %v, want %v", c.window, got, c.want)
		}
	}
}

// TestFloorAtLastMinuteByHand: a forecast that misses a burst of three
// minutes has the burst's second and third minutes served by the floor,
// the first still short; the floor never reads minute m for minute m.
func TestFloorAtLastMinuteByHand(t *testing.T) {
	const s = Start + 50
	d := dayWith(map[int]float64{s: 240, s + 1: 240, s + 2: 180, s + 3: 30})
	blind := make([]int, End-Start+1) // a forecast of one replica all along
	for m := range blind {
		blind[m] = 1
	}
	got := FloorAtLastMinute(blind, d, Target)
	for m, want := range map[int]int{s: 1, s + 1: 4, s + 2: 4, s + 3: 3, s + 4: 1, Start: 1} {
		if r := replicasAt(got, m); r != want {
			t.Errorf("minute %d: %d replicas, want %d", m-s, r, want)
		}
	}
	if o := SimulateScaling(d, got, Target); o.Deficit != 180 {
		t.Errorf("deficit %v, want 180 (the burst's first minute alone)", o.Deficit)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range d {
		d[i] = float64(rng.IntN(400))
	}
	base := FloorAtLastMinute(blind, d, Target)
	for _, m := range []int{Start, Start + 90, End} {
		changed := slices.Clone(d)
		for k := m - 1; k < End; k++ {
			changed[k] = float64(rng.IntN(10000))
		}
		if got := FloorAtLastMinute(blind, changed, Target); !slices.Equal(got[:m-Start+1], base[:m-Start+1]) {
			t.Fatalf("changing minutes %d.. changed replicas up to minute %d", m, m)
		}
	}
}

// TestFlooredCurveAndItsReading: the floored curve has one point per
// output and hold (none and HeldWindows), each marked with its floor; a
// forecast blind to a burst gains exactly what the floor serves, and the
// reading at reactive's budget names the floored curve's deficit beside
// the forecast's own.
func TestFlooredCurveAndItsReading(t *testing.T) {
	const s = Start + 50
	busy := dayWith(map[int]float64{s: 240, s + 1: 240, s + 2: 240})
	blind := make([][]float64, End-Start+1)
	for m := range blind {
		blind[m] = []float64{0, 0}
	}
	qs := []QuantileAhead{{Q: 0.9, Ahead: [][][]float64{blind}}}
	rep := EvaluateScaling(ScalingInputs{Days: [][]float64{busy}, Target: Target, MespQuantiles: qs, MespMean: [][][]float64{blind}})
	if len(rep.MespFloored) != 2*(1+len(HeldWindows)) {
		t.Fatalf("%d floored points, want %d", len(rep.MespFloored), 2*(1+len(HeldWindows)))
	}
	for _, p := range rep.MespFloored {
		if p.Floor != FloorLastMinute || p.Lead != 1 {
			t.Fatalf("floored point %+v", p)
		}
	}
	// unheld: four replicas in the burst's 2nd and 3rd minutes and the
	// minute after, short by the burst's first minute alone
	for _, p := range rep.MespFloored {
		if p.Window == nil && (p.Deficit != 240 || p.ReplicaMinutes != 12) {
			t.Fatalf("floored, unheld: %+v", p)
		}
		if p.Window != nil && *p.Window == 5 && p.ReplicaMinutes != 32 {
			t.Fatalf("floored, held 5 minutes: %+v", p)
		}
	}
	// reactive with the 5-minute window: the same 240 short at 32
	// replica-minutes; the blind forecast alone misses all 720
	at := rep.AtReactive5
	if at == nil || at.ReplicaMinutes != 32 || at.ReactiveDeficit != 240 || at.MespDeficit != 720 || at.MespFlooredDeficit != 240 || at.MespFlooredOverReactive != 1 {
		t.Fatalf("reading at reactive's budget: %+v", at)
	}
}

// TestQuantileGridHoldsEveryHundredthBetweenServedLevels: the grid is the
// served levels and every hundredth strictly between the lowest and the
// highest, each printed as itself (0.82, not 0.8200000000000001), marked
// interpolated unless served; no served level, no grid.
func TestQuantileGridHoldsEveryHundredthBetweenServedLevels(t *testing.T) {
	levels, interp := QuantileGrid([]float64{0.8, 0.85, 0.9, 0.95, 0.99})
	if len(levels) != 20 || levels[0] != 0.8 || levels[19] != 0.99 {
		t.Fatalf("grid %v, want 0.80..0.99 by 0.01", levels)
	}
	for k, q := range levels {
		if s := strconv.FormatFloat(q, 'g', -1, 64); len(s) > 4 {
			t.Errorf("level %d prints as %s", k, s)
		}
		served := q == 0.8 || q == 0.85 || q == 0.9 || q == 0.95 || q == 0.99
		if interp[k] == served {
			t.Errorf("level %v: interpolated %v", q, interp[k])
		}
		if k > 0 && !(q > levels[k-1]) {
			t.Errorf("levels %v and %v not increasing", levels[k-1], q)
		}
	}
	if l, _ := QuantileGrid([]float64{0.9}); !slices.Equal(l, []float64{0.9}) {
		t.Errorf("one served level: grid %v", l)
	}
	if l, _ := QuantileGrid(nil); l != nil {
		t.Errorf("no served level: grid %v", l)
	}
}
