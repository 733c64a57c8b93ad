// Package draw makes the synthetic per-minute counts the behaviour tests
// send: Poisson calls at a rate that may change minute by minute.
package draw

import (
	"math"
	"math/rand/v2"
)

// Poisson is one Poisson count of mean lambda (Knuth's method: the means
// here are small).
func Poisson(rng *rand.Rand, lambda float64) int {
	l, k, p := math.Exp(-lambda), 0, 1.0
	for {
		p *= rng.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

// Minutes is n minutes of Poisson counts, minute m's of mean rate(m).
func Minutes(rng *rand.Rand, n int, rate func(m int) float64) []float64 {
	d := make([]float64, n)
	for m := range d {
		d[m] = float64(Poisson(rng, rate(m)))
	}
	return d
}

// Constant is a rate that does not change.
func Constant(r float64) func(int) float64 { return func(int) float64 { return r } }
