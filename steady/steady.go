// Package steady tells a pattern whose recent minutes are what one
// Poisson rate would give, and that rate. For such a function the
// expected count of every minute ahead is the rate: nothing in its
// history says more, and the mean over the longest such stretch is the
// most precise estimate of it.
//
// The p_invoke models answer a small function's chance of a call from
// its last minutes and from how real small functions behave, and their
// hour of a stationary rate of 0.3 a minute came out 15-25% short
// (p_invoke times the size of an invocation, manifest.Sparse); on the
// real validation functions whose last hours pass this test the next
// hour's volume is the rate over them (median ratio 1.00).
package steady

import "math"

// BinMinutes is the width of the bins whose sums are tested against one
// rate: wide enough that a sparse rate fills them, narrow enough that an
// hour's change shows in several.
const BinMinutes = 15

// Looks are the stretches tried, longest first: the longest that passes
// gives the rate. The hour and two hours read a step an hour or two back
// (10 a minute, then 1: p_invoke times the size of an invocation had the
// next hour 77-146% over); on the validation functions (`mesp
// choose-volume`) they moved the bands' hour bias nearer 1 (distance 0.11
// -> 0.09) at the same hour WAPE. A slow swing reads as its last hour's
// rate there.
var Looks = []int{1440, 720, 480, 240, 120, 60}

// z is the one-sided normal quantile of the tests' level (1%): a stretch
// is called steady unless its bins are more dispersed, or its open
// silence longer, than one rate gives in 99 draws of 100.
const z = 2.3263

// zTwoSided is the two-sided normal quantile of the same level.
const zTwoSided = 2.5758

// Rate is the steady rate found: invocations per minute over the last
// Minutes minutes.
type Rate struct {
	PerMinute float64
	Minutes   int
}

// Detect returns the rate of the longest of Looks (at most len(counts))
// whose bin sums pass the dispersion test of one Poisson rate (their
// index of dispersion times the bins less one under the chi-square
// quantile), or else of a step half an hour back (stepped), with at least
// one invocation and an open silence at the end no longer than that rate
// makes likely (rate x gap at most ln 100: a function that stopped is not
// steady). Counts are whole invocations.
func Detect(counts []float64) (Rate, bool) {
	r, ok := longestStretch(counts)
	if !ok {
		return Rate{}, false
	}
	gap := 0
	for gap < len(counts) && counts[len(counts)-1-gap] == 0 {
		gap++
	}
	if r.PerMinute*float64(gap) > math.Log(100) {
		return Rate{}, false
	}
	return r, true
}

// longestStretch is the rate of the longest of Looks that holds one
// Poisson rate, or else of the stretch after a step half an hour back.
func longestStretch(counts []float64) (Rate, bool) {
	for _, look := range Looks {
		if look > len(counts) {
			continue
		}
		if rate, ok := poissonStretch(counts[len(counts)-look:], BinMinutes); ok {
			return Rate{PerMinute: rate, Minutes: look}, true
		}
	}
	if rate, ok := stepped(counts); ok {
		return Rate{PerMinute: rate, Minutes: StepMinutes}, true
	}
	return Rate{}, false
}

// StepMinutes is the stretch after a step that stepped reads: too short
// for the 15-minute bins of Looks, long enough for six of stepBinMinutes.
const StepMinutes = 30

const stepBinMinutes = 5

// stepped is the rate of the last StepMinutes when they hold one Poisson
// rate (5-minute bins) that differs from the one rate of the hour and a
// half before them (15-minute bins; the two counts' split against their
// minutes, a binomial score test): a step half an hour back, which no
// look of Looks can hold on one side. Without it, 10 calls a minute and
// then 1 for the last half hour had the next hour forecast at 242 where
// 53 came (p_invoke times an invocation's size, both still reading the
// hours before).
func stepped(counts []float64) (float64, bool) {
	const before = 3 * StepMinutes
	if len(counts) < StepMinutes+before {
		return 0, false
	}
	rate, ok := poissonStretch(counts[len(counts)-StepMinutes:], stepBinMinutes)
	if !ok {
		return 0, false
	}
	earlier, ok := poissonStretch(counts[len(counts)-StepMinutes-before:len(counts)-StepMinutes], BinMinutes)
	if !ok {
		return 0, false
	}
	// both stretches are whole bins, so rate x minutes is each one's count
	n1, n := rate*StepMinutes, rate*StepMinutes+earlier*before
	share := float64(StepMinutes) / float64(StepMinutes+before)
	score := (n1 - share*n) / math.Sqrt(n*share*(1-share))
	return rate, math.Abs(score) > zTwoSided
}

// poissonStretch is the stretch's rate per minute and whether the sums
// of its bins (width minutes each) pass the dispersion test (Pearson's
// chi-square against their mean) and the trend test (the score of a
// linear trend over the bins: a slow ramp disperses the bins too little
// to fail the first).
func poissonStretch(stretch []float64, width int) (float64, bool) {
	var buf [1440 / BinMinutes]float64 // the longest look's bins, on the stack
	bins := min(len(stretch)/width, len(buf))
	if bins < 2 {
		return 0, false
	}
	var total float64
	sums := buf[:0]
	for b := range bins {
		var s float64
		for _, v := range stretch[b*width : (b+1)*width] {
			s += v
		}
		sums = append(sums, s)
		total += s
	}
	if total == 0 {
		return 0, false
	}
	mean, centre := total/float64(bins), float64(bins-1)/2
	var chi, slope, spread float64
	for b, s := range sums {
		chi += (s - mean) * (s - mean) / mean
		slope += (float64(b) - centre) * s
		spread += (float64(b) - centre) * (float64(b) - centre)
	}
	// under one rate the slope's score has variance spread x mean
	trend := math.Abs(slope) / math.Sqrt(spread*mean)
	return total / float64(bins*width), chi <= chiSquareQuantile(float64(bins-1)) && trend <= zTwoSided
}

// chiSquareQuantile is the chi-square quantile of k degrees of freedom
// at the tests' level (Wilson and Hilferty's approximation: within 1% of
// the exact quantile from 10 degrees of freedom on).
func chiSquareQuantile(k float64) float64 {
	c := 2 / (9 * k)
	return k * math.Pow(1-c+z*math.Sqrt(c), 3)
}
