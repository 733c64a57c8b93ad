package trace

import (
	"math"
	"math/rand/v2"
)

// Augment makes a new, realistic daily series from a real one, for scale
// benchmarks: the day is shifted by a uniform random offset in
// [-maxShift, maxShift] minutes (zeros shifted in) and each minute's count
// is multiplied by (1 + noise*N(0,1)), rounded and clipped at 0.
func Augment(counts []float64, maxShift int, noise float64, rng *rand.Rand) []float64 {
	s := rng.IntN(2*maxShift+1) - maxShift
	out := make([]float64, len(counts))
	for t := range out {
		src := t - s
		if src < 0 || src >= len(counts) {
			continue
		}
		out[t] = math.Max(0, math.Round(counts[src]*(1+noise*rng.NormFloat64())))
	}
	return out
}
