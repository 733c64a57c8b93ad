package provision

import (
	"fmt"
	"slices"
)

// SilentHours are the silences of EVALUATION.md §2's silent functions:
// each evaluated day with its last S hours set to zero (6: silent through
// the whole simulated window; 24: a whole silent day).
var SilentHours = []int{6, 12, 24}

// Silenced returns a copy of day with its last hours*60 minutes zero.
func Silenced(day []float64, hours int) []float64 {
	out := slices.Clone(day)
	for m := max(0, len(out)-hours*60); m < len(out); m++ {
		out[m] = 0
	}
	return out
}

// SilentCopies is the platform mix's silent functions: one copy of each
// day, silenced for SilentHours[i mod 3] hours (cycling over the days in
// file order); hours[i] says which.
func SilentCopies(days [][]float64) (silent [][]float64, hours []int) {
	for i, d := range days {
		s := SilentHours[i%len(SilentHours)]
		silent = append(silent, Silenced(d, s))
		hours = append(hours, s)
	}
	return silent, hours
}

// SilentReport is one silence's idle minutes under each policy (silent
// functions have no invocation to miss: a warm minute is an idle one).
type SilentReport struct {
	SilentHours int `json:"silent_hours"`
	Functions   int `json:"functions"`
	// Minutes is the simulated minutes (functions x 360): a policy's idle
	// minutes over it is the share of minutes it keeps a silent function
	// warm.
	Minutes  int                `json:"minutes"`
	Policies map[string]Outcome `json:"policies"`
}

// SilentInputs are silent copies (from SilentCopies) with their minutely
// p_invoke (as Inputs' MespP and DenseP; nil leaves a policy out): Days[i]
// is silenced for Hours[i] hours.
type SilentInputs struct {
	Days, MespP, DenseP [][]float64
	Hours               []int
}

// EvaluateSilent scores the policies on the silent copies, one report per
// silence, and the platform mix: the active functions (active) plus their
// silent copies, every policy's points summed over both (cold starts come
// from the active functions, idle minutes from both). The default
// threshold is the active functions'.
func EvaluateSilent(active Inputs, silent SilentInputs) ([]SilentReport, Report, error) {
	if len(silent.Days) != len(silent.Hours) {
		return nil, Report{}, fmt.Errorf("provision: %d silent days, %d silences", len(silent.Days), len(silent.Hours))
	}
	th := active.DefaultThreshold
	var out []SilentReport
	for _, s := range SilentHours {
		var days, mesp, dense [][]float64
		for i, h := range silent.Hours {
			if h != s {
				continue
			}
			days = append(days, silent.Days[i])
			if silent.MespP != nil {
				mesp = append(mesp, silent.MespP[i])
			}
			if silent.DenseP != nil {
				dense = append(dense, silent.DenseP[i])
			}
		}
		if len(days) == 0 {
			continue
		}
		// the fixed policies; of the minutely ones, only the default point
		r := Evaluate(Inputs{Days: days})
		sr := SilentReport{SilentHours: s, Functions: len(days), Minutes: len(days) * (End - Start + 1), Policies: map[string]Outcome{}}
		for _, w := range r.KeepAlive {
			sr.Policies[w.Label()] = w.Outcome
		}
		sr.Policies["hybrid_histogram"] = r.HybridHistogram
		if th > 0 {
			for name, ps := range map[string][][]float64{"mesp_minutely_default": mesp, "dense_minutely_default": dense} {
				if ps != nil {
					sr.Policies[name] = atThreshold(days, ps, th)
				}
			}
		}
		out = append(out, sr)
	}
	mix := Inputs{DefaultThreshold: th}
	mix.Days = append(slices.Clone(active.Days), silent.Days...)
	if active.MespP != nil && silent.MespP != nil {
		mix.MespP = append(slices.Clone(active.MespP), silent.MespP...)
	}
	if active.DenseP != nil && silent.DenseP != nil {
		mix.DenseP = append(slices.Clone(active.DenseP), silent.DenseP...)
	}
	return out, Evaluate(mix), nil
}

// atThreshold is the minutely policy's outcome at one threshold.
func atThreshold(days, ps [][]float64, th float64) Outcome {
	var o Outcome
	for i, d := range days {
		o.Add(Simulate(d, AtLeast(ps[i], th)))
	}
	o.Finish()
	return o
}
