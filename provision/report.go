package provision

import (
	"math"
	"strconv"
)

// KeepAliveWindows is the fixed keep-alive frontier (minutes).
var KeepAliveWindows = []int{0, 1, 2, 3, 5, 7, 10, 15, 20, 30, 45, 60}

// ReferenceWindow is today's common practice, the reference every policy
// is read against (keepalive10).
const ReferenceWindow = 10

// ProbabilityThresholds are the p_invoke thresholds of the minutely curves:
// 48 points spaced evenly in log scale from 0.001 to 0.95, fine near 0
// where sparse functions' decisions are made (a coarse grid reads a curve
// "at the reference idle" off whichever point happens to fall below it).
var ProbabilityThresholds = logGrid(0.001, 0.95, 48)

func logGrid(lo, hi float64, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		v := lo * math.Pow(hi/lo, float64(i)/float64(n-1))
		out[i] = math.Round(v*1e5) / 1e5
	}
	return out
}

// HourlyThresholds (invocations per minute) of mesp_hourly, the policy of
// before: the count forecast made at the hourly origins, at least the
// threshold, or a keep-alive of HourlyKeepAlive minutes.
var HourlyThresholds = []float64{0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 2}

// HourlyKeepAlive backs mesp_hourly: half the common 10 minutes, fixed a
// priori.
const HourlyKeepAlive = 5

// WindowPoint is one keep-alive window's outcome.
type WindowPoint struct {
	Window int `json:"window"`
	Outcome
}

// ThresholdPoint is one threshold's outcome on a policy's curve.
type ThresholdPoint struct {
	Threshold float64 `json:"threshold"`
	Outcome
}

// Report is EVALUATION.md §2's "provisioning" document.
type Report struct {
	KeepAlive            []WindowPoint    `json:"keepalive"`
	HybridHistogram      Outcome          `json:"hybrid_histogram"`
	MespMinutely         []ThresholdPoint `json:"mesp_minutely,omitempty"`
	MespMinutelyDefault  *ThresholdPoint  `json:"mesp_minutely_default,omitempty"`
	DenseMinutely        []ThresholdPoint `json:"dense_minutely,omitempty"`
	MespHourly           []ThresholdPoint `json:"mesp_hourly,omitempty"`
	PeerLightGBMMinutely []ThresholdPoint `json:"peer_lightgbm_minutely,omitempty"`
	Comparison           Comparison       `json:"comparison"`
	// Silent and PlatformMix are EVALUATION.md §2's silent functions and
	// platform mix (EvaluateSilent).
	Silent      []SilentReport `json:"silent,omitempty"`
	PlatformMix *Report        `json:"platform_mix,omitempty"`
}

// Inputs are the per-function data of one evaluation; a nil field leaves
// its policy out.
type Inputs struct {
	Days [][]float64 // full days, index 0 is minute 1
	// MespP, DensePP, PeerP: [function][m-Start], p_invoke of minute m made
	// from minutes 1..m-1 (MinutelyLoop).
	MespP, DenseP, PeerP [][]float64
	// DefaultThreshold is MESP's threshold fixed before the run (0: none).
	DefaultThreshold float64
	// HourlyForecasts[function][origin] is the count forecast made at
	// origin Start-1+60*i.
	HourlyForecasts [][][]float64
}

// Evaluate simulates every policy on every function.
func Evaluate(in Inputs) Report {
	var r Report
	ka := make([]Outcome, len(KeepAliveWindows))
	curve := func(enabled bool, ths []float64, warm func(i int, th float64) []bool) []ThresholdPoint {
		if !enabled {
			return nil
		}
		out := make([]ThresholdPoint, len(ths))
		for k, th := range ths {
			out[k].Threshold = th
			for i, d := range in.Days {
				out[k].Add(Simulate(d, warm(i, th)))
			}
			out[k].Finish()
		}
		return out
	}
	for _, d := range in.Days {
		for k, w := range KeepAliveWindows {
			ka[k].Add(Simulate(d, KeepAlive(d, w)))
		}
		warm, fallback := HybridHistogram(d, Start-1)
		o := Simulate(d, warm)
		if fallback {
			o.FallbackFunctions = 1
		}
		r.HybridHistogram.Add(o)
	}
	r.HybridHistogram.Finish()
	for k, w := range KeepAliveWindows {
		ka[k].Finish()
		r.KeepAlive = append(r.KeepAlive, WindowPoint{w, ka[k]})
	}
	at := func(ps [][]float64) func(int, float64) []bool {
		return func(i int, th float64) []bool { return AtLeast(ps[i], th) }
	}
	r.MespMinutely = curve(in.MespP != nil, ProbabilityThresholds, at(in.MespP))
	r.DenseMinutely = curve(in.DenseP != nil, ProbabilityThresholds, at(in.DenseP))
	r.PeerLightGBMMinutely = curve(in.PeerP != nil, ProbabilityThresholds, at(in.PeerP))
	if in.MespP != nil && in.DefaultThreshold > 0 {
		r.MespMinutelyDefault = &ThresholdPoint{in.DefaultThreshold, atThreshold(in.Days, in.MespP, in.DefaultThreshold)}
	}
	r.MespHourly = curve(in.HourlyForecasts != nil, HourlyThresholds, func(i int, th float64) []bool {
		return Union(ForecastPrewarm(in.HourlyForecasts[i], th), KeepAlive(in.Days[i], HourlyKeepAlive))
	})
	r.Comparison = compare(r)
	return r
}

// Comparison reads the curves the way EVALUATION.md §2 says: at no more
// idle instance-minutes than a reference, the fewest cold starts.
type Comparison struct {
	Reference WindowPoint `json:"reference_keepalive"`
	// AtReferenceIdle holds, per curve, its best point with no more idle
	// minutes than the reference (absent: no such point).
	AtReferenceIdle map[string]Best `json:"at_reference_idle"`
	// MespVsKeepAlive says, for every window w >= 1, whether some point of
	// mesp_minutely has fewer cold starts at no more idle minutes.
	MespVsKeepAlive []WindowVerdict `json:"mesp_minutely_vs_keepalive,omitempty"`
}

// Best is a curve's best point under an idle budget.
type Best struct {
	Threshold               float64 `json:"threshold"`
	ColdStarts              int     `json:"cold_starts"`
	IdleMinutes             int     `json:"idle_minutes"`
	ColdStartsOverReference float64 `json:"cold_starts_over_reference"`
	IdleOverReference       float64 `json:"idle_over_reference"`
	// Interpolated is the curve's cold starts at exactly the reference's
	// idle minutes, linear between the two thresholds around it (0 when the
	// curve does not reach that far): the grid point above can sit a few
	// percent below the budget, so curves compare fairly only here.
	Interpolated        float64 `json:"cold_starts_interpolated,omitempty"`
	InterpolatedOverRef float64 `json:"cold_starts_interpolated_over_reference,omitempty"`
}

// WindowVerdict compares mesp_minutely with one keep-alive window.
type WindowVerdict struct {
	Window int  `json:"window"`
	Beaten bool `json:"beaten"`
	// ColdStartsRatio is MESP's best cold starts at the window's idle over
	// the window's cold starts (0 when no point fits the idle budget).
	ColdStartsRatio float64 `json:"cold_starts_ratio"`
}

// BestAtIdle is the point of curve with the fewest cold starts among those
// with at most idle idle minutes.
func BestAtIdle(curve []ThresholdPoint, idle int) (ThresholdPoint, bool) {
	var best ThresholdPoint
	found := false
	for _, p := range curve {
		if p.IdleMinutes <= idle && (!found || p.ColdStarts < best.ColdStarts) {
			best, found = p, true
		}
	}
	return best, found
}

// ColdStartsAtIdle is the curve's cold starts at exactly idle idle
// minutes, linear between the nearest points below and above it; false
// when no point lies on one side.
func ColdStartsAtIdle(curve []ThresholdPoint, idle int) (float64, bool) {
	var lo, hi *ThresholdPoint
	for i := range curve {
		p := &curve[i]
		if p.IdleMinutes <= idle && (lo == nil || p.IdleMinutes > lo.IdleMinutes || p.IdleMinutes == lo.IdleMinutes && p.ColdStarts < lo.ColdStarts) {
			lo = p
		}
		if p.IdleMinutes >= idle && (hi == nil || p.IdleMinutes < hi.IdleMinutes || p.IdleMinutes == hi.IdleMinutes && p.ColdStarts < hi.ColdStarts) {
			hi = p
		}
	}
	switch {
	case lo == nil || hi == nil:
		return 0, false
	case hi.IdleMinutes == lo.IdleMinutes:
		return float64(min(lo.ColdStarts, hi.ColdStarts)), true
	}
	w := float64(idle-lo.IdleMinutes) / float64(hi.IdleMinutes-lo.IdleMinutes)
	return float64(lo.ColdStarts) + w*float64(hi.ColdStarts-lo.ColdStarts), true
}

func compare(r Report) Comparison {
	var c Comparison
	for _, w := range r.KeepAlive {
		if w.Window == ReferenceWindow {
			c.Reference = w
		}
	}
	ref := c.Reference
	ratio := func(a, b int) float64 {
		if b == 0 {
			return 0
		}
		return float64(a) / float64(b)
	}
	c.AtReferenceIdle = map[string]Best{}
	for name, cv := range map[string][]ThresholdPoint{"mesp_minutely": r.MespMinutely, "dense_minutely": r.DenseMinutely,
		"mesp_hourly": r.MespHourly, "peer_lightgbm_minutely": r.PeerLightGBMMinutely} {
		if p, ok := BestAtIdle(cv, ref.IdleMinutes); ok {
			b := Best{Threshold: p.Threshold, ColdStarts: p.ColdStarts, IdleMinutes: p.IdleMinutes,
				ColdStartsOverReference: ratio(p.ColdStarts, ref.ColdStarts), IdleOverReference: ratio(p.IdleMinutes, ref.IdleMinutes)}
			if v, ok := ColdStartsAtIdle(cv, ref.IdleMinutes); ok && ref.ColdStarts > 0 {
				b.Interpolated, b.InterpolatedOverRef = v, v/float64(ref.ColdStarts)
			}
			c.AtReferenceIdle[name] = b
		}
	}
	if d := r.MespMinutelyDefault; d != nil {
		c.AtReferenceIdle["mesp_minutely_default"] = Best{Threshold: d.Threshold, ColdStarts: d.ColdStarts, IdleMinutes: d.IdleMinutes,
			ColdStartsOverReference: ratio(d.ColdStarts, ref.ColdStarts), IdleOverReference: ratio(d.IdleMinutes, ref.IdleMinutes)}
	}
	if r.MespMinutely != nil {
		for _, w := range r.KeepAlive {
			if w.Window < 1 {
				continue
			}
			v := WindowVerdict{Window: w.Window}
			if p, ok := BestAtIdle(r.MespMinutely, w.IdleMinutes); ok {
				v.Beaten = p.ColdStarts < w.ColdStarts
				v.ColdStartsRatio = ratio(p.ColdStarts, w.ColdStarts)
			}
			c.MespVsKeepAlive = append(c.MespVsKeepAlive, v)
		}
	}
	return c
}

// Label names a keep-alive window for tables and plots.
func (w WindowPoint) Label() string { return "keepalive" + strconv.Itoa(w.Window) }
