package report

import (
	"strings"
	"testing"

	"github.com/mesp-project/mesp/provision"
)

func TestFrontierKeepsOnlyUnbeatenPoints(t *testing.T) {
	pt := func(rm int, deficit float64) provision.ScalingPoint {
		return provision.ScalingPoint{ScalingOutcome: provision.ScalingOutcome{ReplicaMinutes: rm, Deficit: deficit}}
	}
	cases := []struct {
		name string
		in   []provision.ScalingPoint
		want []int // replica-minutes of the points kept, in order
	}{
		{"empty", nil, nil},
		{"out of order, one beaten", []provision.ScalingPoint{pt(300, 50), pt(100, 90), pt(200, 95), pt(250, 60)}, []int{100, 250, 300}},
		{"a tie in cost keeps the lower deficit", []provision.ScalingPoint{pt(100, 80), pt(100, 70)}, []int{100}},
		{"more cost for the same deficit is beaten", []provision.ScalingPoint{pt(100, 70), pt(150, 70)}, []int{100}},
	}
	for _, c := range cases {
		got := frontier(c.in)
		if len(got) != len(c.want) {
			t.Fatalf("%s: %d points, want %d", c.name, len(got), len(c.want))
		}
		for k, p := range got {
			if p.ReplicaMinutes != c.want[k] {
				t.Errorf("%s: point %d at %d replica-minutes, want %d", c.name, k, p.ReplicaMinutes, c.want[k])
			}
		}
		if c.name == "a tie in cost keeps the lower deficit" && got[0].Deficit != 70 {
			t.Errorf("%s: kept deficit %v", c.name, got[0].Deficit)
		}
	}
}

// TestTablePrintsTheReplicaReading: the printed table reads each replica
// curve at reactive scaling's cost, as a ratio to reactive's deficit,
// and every level's coverage in increasing order of level; without a
// scaling section it prints none.
func TestTablePrintsTheReplicaReading(t *testing.T) {
	d := Document{Scaling: &provision.ScalingReport{Target: 60, Functions: 3, All: 9,
		Coverage:    map[string]float64{"0.99": 0.989, "0.5": 0.75, "0.91": 0.913},
		AtReactive5: &provision.ScalingComparison{ReplicaMinutes: 400, ReactiveDeficit: 1000, MespDeficit: 700, MespFlooredDeficit: 510}}}
	got := Table(d)
	for _, want := range []string{"3 of 9 functions", "reactive 1000", "700  0.700x", "510  0.510x", "coverage a minute ahead: q0.5 0.7500 q0.91 0.9130 q0.99 0.9890"} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "peer_lightgbm_quantile") {
		t.Errorf("a curve with no reading printed:\n%s", got)
	}
	d.Scaling = nil
	if strings.Contains(Table(d), "replicas:") {
		t.Error("a replica block without a scaling section")
	}
}
