package provision

import (
	"fmt"
	"math/rand/v2"
	"slices"
)

// The default pre-warm threshold is fixed for the platform a user runs,
// not for the active functions alone: on the platform mix of EVALUATION.md
// §2 (the active functions and one silent copy of each), the threshold
// with the fewest cold starts whose idle instance-minutes stay within
// keepalive10's over resampled functions. On active functions alone the
// best threshold is lower, and it keeps silent functions warm for their
// first hour of silence: the idle memory pre-warming exists to save.
const (
	// ReferenceKeepAlive is the keep-alive window whose idle memory the
	// default threshold must not exceed.
	ReferenceKeepAlive = 10
	// IdleConfidence is the share of bootstrap resamples in which the idle
	// minutes must stay within the reference's.
	IdleConfidence = 0.95
	// Bootstrap is the number of resamples of the functions.
	Bootstrap = 2000
	// MaxSilentShare is the share of the silent copies' minutes the
	// default threshold may keep warm: a function nobody calls any more
	// is what pre-warming must let go.
	MaxSilentShare = 0.01
)

// ThresholdGrid is the thresholds ChooseThreshold tries.
var ThresholdGrid = logGrid(0.003, 0.3, 80)

// ThresholdChoice is ChooseThreshold's answer with the figures it was
// chosen on (the platform mix of the functions it was given).
type ThresholdChoice struct {
	Threshold float64
	// ColdStarts, IdleMinutes: the mix at Threshold (cold starts from the
	// active functions, idle minutes from both); SilentIdleMinutes the
	// silent copies' share of IdleMinutes, out of SilentMinutes.
	ColdStarts, IdleMinutes, InvokedMinutes int
	SilentIdleMinutes, SilentMinutes        int
	// Reference* are keepalive10's on the same mix.
	ReferenceColdStarts, ReferenceIdleMinutes int
	// IdleRatioUpper is the IdleConfidence quantile, over resamples, of
	// idle minutes over the reference's.
	IdleRatioUpper float64
}

// ChooseThreshold picks the default threshold on the platform mix of
// active (with MespP: the served p_invoke of every minute) and silent
// (SilentCopies of active.Days, with their MespP): the threshold of
// thresholds with the fewest cold starts (then the fewest idle minutes)
// whose idle minutes over keepalive10's stay at or below 1 in
// IdleConfidence of Bootstrap resamples of the functions, each drawn with
// its silent copy, and whose silent copies are warm at most maxSilentShare
// of their minutes (0: any share). When none qualifies, the highest
// threshold.
func ChooseThreshold(active Inputs, silent SilentInputs, thresholds []float64, maxSilentShare float64, seed uint64) (ThresholdChoice, error) {
	if err := checkMix(active, silent); err != nil {
		return ThresholdChoice{}, err
	}
	n := len(active.Days)
	if len(thresholds) == 0 {
		return ThresholdChoice{}, fmt.Errorf("provision: no thresholds to choose from")
	}
	ref, refIdle := mixReference(active, silent)
	weights := resampleWeights(n, Bootstrap, seed)
	refResampled := make([]float64, len(weights))
	for b, w := range weights {
		refResampled[b] = max(dot(w, refIdle), 1)
	}
	var best *ThresholdChoice
	var highest ThresholdChoice
	idle := make([]float64, n)
	ratios := make([]float64, len(weights))
	for _, th := range thresholds {
		c := ThresholdChoice{Threshold: th, ReferenceColdStarts: ref.ColdStarts, ReferenceIdleMinutes: ref.IdleMinutes,
			SilentMinutes: n * (End - Start + 1)}
		for i := range n {
			a := Simulate(active.Days[i], AtLeast(active.MespP[i], th))
			s := Simulate(silent.Days[i], AtLeast(silent.MespP[i], th))
			idle[i] = float64(a.IdleMinutes + s.IdleMinutes)
			c.ColdStarts += a.ColdStarts
			c.InvokedMinutes += a.InvokedMinutes
			c.IdleMinutes += a.IdleMinutes + s.IdleMinutes
			c.SilentIdleMinutes += s.IdleMinutes
		}
		for b, w := range weights {
			ratios[b] = dot(w, idle) / refResampled[b]
		}
		c.IdleRatioUpper = quantile(ratios, IdleConfidence)
		if th >= highest.Threshold {
			highest = c
		}
		silentOK := maxSilentShare <= 0 || float64(c.SilentIdleMinutes) <= maxSilentShare*float64(c.SilentMinutes)
		if c.IdleRatioUpper <= 1 && silentOK && (best == nil || c.ColdStarts < best.ColdStarts ||
			c.ColdStarts == best.ColdStarts && c.IdleMinutes < best.IdleMinutes) {
			best = &c
		}
	}
	if best == nil {
		return highest, nil
	}
	return *best, nil
}

// checkMix refuses a platform mix that is not one silent copy and a row of
// p_invoke per active function.
func checkMix(active Inputs, silent SilentInputs) error {
	n := len(active.Days)
	if n == 0 || len(active.MespP) != n || len(silent.Days) != n || len(silent.MespP) != n {
		return fmt.Errorf("provision: %d active days with %d p_invoke rows, %d silent days with %d: want one silent copy and p_invoke per function",
			n, len(active.MespP), len(silent.Days), len(silent.MespP))
	}
	return nil
}

// mixReference is the reference keep-alive's outcome on the mix (cold
// starts from the active functions, idle minutes from both) and each
// function's idle minutes under it, its silent copy's included.
func mixReference(active Inputs, silent SilentInputs) (ref Outcome, idle []float64) {
	idle = make([]float64, len(active.Days))
	for i := range active.Days {
		a := Simulate(active.Days[i], KeepAlive(active.Days[i], ReferenceKeepAlive))
		s := Simulate(silent.Days[i], KeepAlive(silent.Days[i], ReferenceKeepAlive))
		idle[i] = float64(a.IdleMinutes + s.IdleMinutes)
		ref.Add(a)
		ref.Add(s)
	}
	return ref, idle
}

// resampleWeights is b bootstrap resamples of n functions: how often each
// function is drawn in each.
func resampleWeights(n, b int, seed uint64) [][]float64 {
	rng := rand.New(rand.NewPCG(seed, 0x6d657370))
	out := make([][]float64, b)
	for k := range out {
		w := make([]float64, n)
		for range n {
			w[rng.IntN(n)]++
		}
		out[k] = w
	}
	return out
}

func dot(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// quantile is the q-quantile of xs by linear interpolation (numpy's
// default), xs unsorted (left as it is).
func quantile(xs []float64, q float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	pos := q * float64(len(s)-1)
	lo := int(pos)
	if lo+1 >= len(s) {
		return s[len(s)-1]
	}
	return s[lo] + (pos-float64(lo))*(s[lo+1]-s[lo])
}
