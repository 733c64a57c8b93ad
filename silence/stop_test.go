package silence

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/mesp-project/mesp/internal/fixture"
)

func TestStopInputsByHand(t *testing.T) {
	logit := func(p float64) float64 { return math.Log(p / (1 - p)) }
	cases := []struct {
		name   string
		counts []float64
		p      float64
		want   []float64
	}{
		// invoked at 1, 4 and 5 (gaps 2 and 0), then 3 idle minutes:
		// longest 2, one closed gap of at least 3: none
		{"paused", []float64{0, 1, 0, 0, 2, 1, 0, 0, 0}, 0.2,
			[]float64{logit(0.2), math.Log(4), math.Log(4) - math.Log(4), 0, 3.0 / 8, math.Log(9)}},
		// gaps 3 and 1, idle 1: both at least as long
		{"busy", []float64{1, 0, 0, 0, 1, 0, 1, 0}, 0.5,
			[]float64{0, math.Log(2), math.Log(2) - math.Log(5), math.Log(3), 3.0 / 8, math.Log(9)}},
		// invoked in the last minute: idle 0, gaps of at least one minute
		{"just invoked", []float64{1, 0, 1, 1}, 0.9,
			[]float64{logit(0.9), 0, -math.Log(3), math.Log(2), 3.0 / 4, math.Log(5)}},
		// never invoked: idle and since-first are the pattern's length, no
		// gap closed (longest -1), p clipped
		{"silent", []float64{0, 0, 0, 0, 0}, 0,
			[]float64{logit(pClip), math.Log(6), math.Log(6) - math.Log(1), 0, 0, math.Log(6)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := StopInputs(c.counts, c.p)
			for k := range c.want {
				if math.Abs(got[k]-c.want[k]) > 1e-12 {
					t.Fatalf("%s = %v, want %v (all %v)", StopFeatures[k], got[k], c.want[k], got)
				}
			}
		})
	}
}

// stump is one split on input f at thr with leaves lo and hi.
func stump(f int, thr, lo, hi float64) StopTree {
	return StopTree{SplitFeature: []int{f}, Threshold: []float64{thr}, LeftChild: []int{-1}, RightChild: []int{-2}, LeafValue: []float64{lo, hi}}
}

func TestStopModelWalksTrees(t *testing.T) {
	deep := StopTree{ // x1 <= 1 ? (x2 <= 0 ? 0.1 : 0.2) : 0.3
		SplitFeature: []int{1, 2}, Threshold: []float64{1, 0},
		LeftChild: []int{1, -1}, RightChild: []int{-3, -2}, LeafValue: []float64{0.1, 0.2, 0.3},
	}
	m := StopModel{Features: StopFeatures, Init: -0.5, Trees: []StopTree{stump(0, 0, -1, 1), deep, {LeafValue: []float64{0.05}}}}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	sig := func(s float64) float64 { return 1 / (1 + math.Exp(-s)) }
	for _, c := range []struct {
		x    []float64
		want float64
	}{
		{[]float64{-1, 1, 0, 0, 0, 0}, sig(-0.5 - 1 + 0.1 + 0.05)}, // equal to a threshold goes left
		{[]float64{0.5, 0, 2, 0, 0, 0}, sig(-0.5 + 1 + 0.2 + 0.05)},
		{[]float64{0.5, 3, -9, 0, 0, 0}, sig(-0.5 + 1 + 0.3 + 0.05)},
	} {
		if got := m.P(c.x); math.Abs(got-c.want) > 1e-15 {
			t.Fatalf("P(%v) = %v, want %v", c.x, got, c.want)
		}
	}
}

func TestStopModelValidateRefuses(t *testing.T) {
	ok := stump(0, 0, -1, 1)
	cases := map[string]StopModel{
		"other features": {Features: []string{"logit_p"}, Trees: []StopTree{ok}},
		"no trees":       {Features: StopFeatures},
		"NaN init":       {Features: StopFeatures, Init: math.NaN(), Trees: []StopTree{ok}},
		"unknown input":  {Features: StopFeatures, Trees: []StopTree{stump(6, 0, 1, 2)}},
		"NaN leaf":       {Features: StopFeatures, Trees: []StopTree{stump(0, 0, math.NaN(), 2)}},
		"a leaf missing": {Features: StopFeatures, Trees: []StopTree{{SplitFeature: []int{0}, Threshold: []float64{0}, LeftChild: []int{-1}, RightChild: []int{-1}, LeafValue: []float64{0, 1}}}},
		"a cycle": {Features: StopFeatures, Trees: []StopTree{{SplitFeature: []int{0, 1}, Threshold: []float64{0, 0},
			LeftChild: []int{1, 0}, RightChild: []int{-1, -2}, LeafValue: []float64{0, 1, 2}}}},
		"lengths": {Features: StopFeatures, Trees: []StopTree{{SplitFeature: []int{0}, Threshold: []float64{0}, LeftChild: []int{-1}, RightChild: []int{-2}, LeafValue: []float64{0}}}},
	}
	for name, m := range cases {
		if err := m.Validate(); !errors.Is(err, ErrStopModel) {
			t.Errorf("%s: %v, want ErrStopModel", name, err)
		}
	}
}

func TestStopDecisionsSeeOnlyThePast(t *testing.T) {
	day := []float64{1, 0, 0, 5, 0, 0}
	p := []float64{0.3, 0.4, 0.5}
	got := StopDecisions(7, 6, day, p, 4, nil)
	if len(got) != 3 {
		t.Fatalf("%d decisions", len(got))
	}
	for k, d := range got {
		m := 4 + k
		x := StopInputs(day[:m-1], p[k])
		if d.Function != 7 || d.SilentHours != 6 || int(d.Minute) != m || d.Invoked != (day[m-1] > 0) || d.PInvoke != p[k] ||
			d.LogitP != x[0] || d.LogIdle != x[1] || d.LogIdleOverLongest != x[2] || d.LogGapsAsLong != x[3] || d.InvokedShare != x[4] || d.LogSinceFirst != x[5] {
			t.Fatalf("decision %d: %+v, inputs %v", k, d, x)
		}
	}
	if !got[0].Invoked || got[1].Invoked || got[0].LogIdle != math.Log(3) {
		t.Fatalf("minute 4 is invoked after 2 idle minutes: %+v", got[:2])
	}
	// a minute timer says the timers' expert answers is marked
	marked := StopDecisions(7, 6, day, p, 4, func(h []float64) bool { return h[len(h)-1] > 0 })
	if marked[0].Timer || !marked[1].Timer || marked[2].Timer {
		t.Fatalf("marked %+v, want minute 5 alone (its history ends invoked)", marked)
	}
}

// BenchmarkStopModel is what the stop model adds to a decision: the
// shipped model's inputs from a day of the fixture, its answer for the
// next minute and the chance the function still runs (per function).
func BenchmarkStopModel(b *testing.B) {
	raw, err := os.ReadFile(filepath.Join(fixture.Models(), "manifest.json"))
	if err != nil {
		b.Fatal(err)
	}
	var m struct {
		Stop *StopModel `json:"stop"`
	}
	if err := json.Unmarshal(raw, &m); err != nil || m.Stop == nil {
		b.Skipf("the shipped set has no stop model (%v)", err)
	}
	rows := fixture.Rows(b)
	b.ResetTimer()
	for i := range b.N {
		c := rows[i%len(rows)].Counts
		x := StopInputs(c, 0.05)
		_ = m.Stop.P(x) + m.Stop.StillRuns(x, 0.05)
	}
}
