// Package provision simulates what forecasts buy a platform (EVALUATION.md
// §2): one instance per function, minute by minute over the last six hours
// (minutes 1081..1440). A minute with invocations and no warm instance is a
// cold start; a warm minute without invocations is an idle instance-minute
// (wasted memory). Every policy sees minutes 1..t only.
package provision

import (
	"math"
	"sort"
)

// P75 is the percentile of per-function cold-start rates reported beside
// the aggregate rate (the metric SPES, ICDE 2024, reports).
const P75 = 0.75

// Start and End bound the simulated minutes (1-based, inclusive).
const (
	Start = 1081
	End   = 1440
)

// Outcome sums a policy's result over functions.
type Outcome struct {
	ColdStarts     int     `json:"cold_starts"`
	InvokedMinutes int     `json:"invoked_minutes"`
	IdleMinutes    int     `json:"idle_minutes"`
	ColdStartRate  float64 `json:"cold_start_rate"`
	// P75FunctionColdStartRate is the 75th percentile, over functions with
	// at least one invoked minute, of each function's own cold-start rate.
	P75FunctionColdStartRate float64 `json:"p75_function_cold_start_rate"`
	FallbackFunctions        int     `json:"fallback_functions,omitempty"`
	rates                    []float64
}

// Add merges one function's outcome (from Simulate).
func (o *Outcome) Add(p Outcome) {
	o.ColdStarts += p.ColdStarts
	o.InvokedMinutes += p.InvokedMinutes
	o.IdleMinutes += p.IdleMinutes
	o.FallbackFunctions += p.FallbackFunctions
	if o.InvokedMinutes > 0 {
		o.ColdStartRate = float64(o.ColdStarts) / float64(o.InvokedMinutes)
	}
	if p.rates != nil {
		o.rates = append(o.rates, p.rates...)
	} else if p.InvokedMinutes > 0 {
		o.rates = append(o.rates, p.ColdStartRate)
	}
}

// Finish computes the per-function percentile once every function is in.
func (o *Outcome) Finish() {
	o.P75FunctionColdStartRate = percentile(o.rates, P75)
}

// percentile is the nearest-rank percentile (0 for no values); it sorts
// rates in place.
func percentile(rates []float64, q float64) float64 {
	if len(rates) == 0 {
		return 0
	}
	sort.Float64s(rates)
	return rates[max(0, int(math.Ceil(q*float64(len(rates))))-1)]
}

// Simulate scores a warm schedule: warm[m-Start] says whether an instance
// is kept warm at the start of minute m. counts is the full day (index 0 is
// minute 1).
func Simulate(counts []float64, warm []bool) Outcome {
	var o Outcome
	for m := Start; m <= End; m++ {
		invoked := counts[m-1] > 0
		w := warm[m-Start]
		switch {
		case invoked && !w:
			o.ColdStarts++
		case !invoked && w:
			o.IdleMinutes++
		}
		if invoked {
			o.InvokedMinutes++
		}
	}
	if o.InvokedMinutes > 0 {
		o.ColdStartRate = float64(o.ColdStarts) / float64(o.InvokedMinutes)
	}
	return o
}

// KeepAlive is the fixed keep-alive policy: after an invocation in minute
// m, the instance stays warm through minute m+window.
func KeepAlive(counts []float64, window int) []bool {
	warm := make([]bool, End-Start+1)
	last := math.MinInt32
	for m := 1; m <= End; m++ {
		if m >= Start {
			warm[m-Start] = m-last <= window
		}
		if counts[m-1] > 0 {
			last = m
		}
	}
	return warm
}

// Hybrid-histogram constants from Shahrad et al., "Serverless in the Wild:
// Characterizing and Optimizing the Serverless Workload at a Large Cloud
// Provider", USENIX ATC 2020, §4.2: a 4-hour idle-time histogram of 1-minute
// bins, the 5th and 99th percentiles as pre-warm and keep-alive bounds with
// a 10% margin, and a fallback to a fixed keep-alive of the histogram's
// range when the histogram is not representative (too few idle times, or a
// coefficient of variation of the bin counts at most 2, i.e. no clear
// pattern).
const (
	HistogramRange = 240
	MinIdleTimes   = 5
	CVThreshold    = 2.0
	Margin         = 0.10
)

// HybridWindows derives (pre-warm, keep-alive) in minutes from the idle
// times observed in minutes 1..train; fallback reports the fixed policy.
func HybridWindows(counts []float64, train int) (prewarm, keepAlive int, fallback bool) {
	var its []int
	last := -1
	for m := 1; m <= train; m++ {
		if counts[m-1] > 0 {
			if last >= 0 && m-last > 1 {
				its = append(its, m-last-1) // idle minutes between invocations
			} else if last >= 0 {
				its = append(its, 0)
			}
			last = m
		}
	}
	if len(its) < MinIdleTimes {
		return 0, HistogramRange, true
	}
	bins := make([]float64, HistogramRange+1)
	inRange := []int{}
	for _, it := range its {
		if it <= HistogramRange {
			bins[it]++
			inRange = append(inRange, it)
		}
	}
	var mean, ss float64
	for _, b := range bins {
		mean += b
	}
	mean /= float64(len(bins))
	for _, b := range bins {
		ss += (b - mean) * (b - mean)
	}
	cv := math.Sqrt(ss/float64(len(bins))) / mean
	if len(inRange) < MinIdleTimes || cv <= CVThreshold {
		return 0, HistogramRange, true
	}
	sort.Ints(inRange)
	pct := func(p float64) float64 {
		return float64(inRange[int(math.Ceil(p*float64(len(inRange))))-1])
	}
	prewarm = int(math.Floor(pct(0.05) * (1 - Margin)))
	keepAlive = max(1, int(math.Ceil(pct(0.99)*(1+Margin)))-prewarm)
	return prewarm, keepAlive, false
}

// HybridHistogram is the policy: after an invocation in minute m, the
// instance is unloaded, loaded again once prewarm idle minutes have passed
// and kept for keepAlive more (with prewarm 0 it simply stays).
func HybridHistogram(counts []float64, train int) ([]bool, bool) {
	pw, ka, fallback := HybridWindows(counts, train)
	warm := make([]bool, End-Start+1)
	last := math.MinInt32
	for m := 1; m <= End; m++ {
		if m >= Start {
			// idle minutes since the last invocation, the histogram's unit
			idle := m - last - 1
			warm[m-Start] = idle >= pw && idle <= pw+ka
		}
		if counts[m-1] > 0 {
			last = m
		}
	}
	return warm, fallback
}

// ForecastPrewarm keeps an instance warm in minute m when the forecast for
// m, made at the latest hourly origin before m, is at least threshold.
// forecasts[i] is the 60-minute forecast made at origin Start-1+60*i.
func ForecastPrewarm(forecasts [][]float64, threshold float64) []bool {
	warm := make([]bool, End-Start+1)
	for m := Start; m <= End; m++ {
		i := (m - Start) / 60
		h := (m - Start) % 60
		warm[m-Start] = forecasts[i][h] >= threshold
	}
	return warm
}

// Union keeps an instance warm when either schedule does (forecast-driven
// pre-warming backed by a short keep-alive for bursts no forecast sees).
func Union(a, b []bool) []bool {
	out := make([]bool, len(a))
	for i := range a {
		out[i] = a[i] || b[i]
	}
	return out
}
