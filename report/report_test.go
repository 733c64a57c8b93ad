package report

import (
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
