package draw

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestMinutesMeanAndVariance(t *testing.T) {
	// a Poisson count's mean and variance are its rate
	for _, rate := range []float64{0.05, 0.3, 2, 20} {
		d := Minutes(rand.New(rand.NewPCG(1, 1)), 200000, Constant(rate))
		var s, ss float64
		for _, v := range d {
			s += v
			ss += v * v
		}
		mean := s / float64(len(d))
		variance := ss/float64(len(d)) - mean*mean
		if se := math.Sqrt(rate / float64(len(d))); math.Abs(mean-rate) > 5*se || math.Abs(variance-rate) > 0.05*rate {
			t.Errorf("rate %g: mean %.4f, variance %.4f", rate, mean, variance)
		}
	}
}
