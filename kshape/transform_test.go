package kshape

import (
	"math"
	"testing"
)

func TestTransformApply(t *testing.T) {
	in := []float64{0, 1, 2.5, 17, 4095, 4096, 1e6, 3}
	cases := []struct {
		name string
		tr   Transform
		want []float64
	}{
		{"identity", Transform{}, in},
		{"log1p equals math.Log1p, table or not", Transform{Log1p: true}, func() []float64 {
			out := make([]float64, len(in))
			for i, v := range in {
				out[i] = math.Log1p(v)
			}
			return out
		}()},
		{"smooth 3, shrinking at the edges", Transform{Smooth: 3}, []float64{0.5, 3.5 / 3, 20.5 / 3, 4114.5 / 3, 8208.0 / 3, 1008191.0 / 3, 1004099.0 / 3, 500001.5}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.tr.Apply(in)
			for i := range got {
				if math.Abs(got[i]-tc.want[i]) > 1e-9*math.Max(1, math.Abs(tc.want[i])) {
					t.Fatalf("[%d] = %v, want %v", i, got[i], tc.want[i])
				}
			}
		})
	}
}
