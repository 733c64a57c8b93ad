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
// p_invoke: Days[i] is silenced for Hours[i] hours.
type SilentInputs struct {
	Inputs
	Hours []int
}

// EvaluateSilent scores the policies on the silent copies, one report per
// silence, and the platform mix: the active functions (active) plus their
// silent copies, every policy's points summed over both (cold starts come
// from the active functions, idle minutes from both).
func EvaluateSilent(active Inputs, silent SilentInputs) ([]SilentReport, Report, error) {
	if len(silent.Days) != len(silent.Hours) {
		return nil, Report{}, fmt.Errorf("provision: %d silent days, %d silences", len(silent.Days), len(silent.Hours))
	}
	var out []SilentReport
	for _, s := range SilentHours {
		in := Inputs{DefaultThreshold: silent.DefaultThreshold}
		for i, h := range silent.Hours {
			if h != s {
				continue
			}
			in.Days = append(in.Days, silent.Days[i])
			if silent.MespP != nil {
				in.MespP = append(in.MespP, silent.MespP[i])
			}
			if silent.DenseP != nil {
				in.DenseP = append(in.DenseP, silent.DenseP[i])
			}
		}
		if len(in.Days) == 0 {
			continue
		}
		r := Evaluate(in)
		sr := SilentReport{SilentHours: s, Functions: len(in.Days), Minutes: len(in.Days) * (End - Start + 1), Policies: map[string]Outcome{}}
		for _, w := range r.KeepAlive {
			sr.Policies[w.Label()] = w.Outcome
		}
		sr.Policies["hybrid_histogram"] = r.HybridHistogram
		if in.DefaultThreshold > 0 {
			for name, ps := range map[string][][]float64{"mesp_minutely_default": in.MespP, "dense_minutely_default": in.DenseP} {
				if ps != nil {
					sr.Policies[name] = atThreshold(in.Days, ps, in.DefaultThreshold)
				}
			}
		}
		out = append(out, sr)
	}
	mix := Inputs{DefaultThreshold: active.DefaultThreshold}
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
