// Package backtest scores next-hour forecasts the way EVALUATION.md §1
// defines: for every function and origin t in 1080, 1140, ..., 1380, a
// forecaster sees minutes 1..t and predicts t+1..t+60.
package backtest

import (
	"math"
	"math/rand/v2"
	"sort"

	"github.com/mesp-project/mesp/manifest"
)

// Origins are the forecast origins (minutes elapsed in the day).
var Origins = []int{1080, 1140, 1200, 1260, 1320, 1380}

// Horizon is the forecast length in minutes: the contract's.
const Horizon = manifest.Horizon

// ScaleEnd is the last minute of the in-sample part used for MASE's scale.
const ScaleEnd = 1080

// Metrics is one forecaster's scores.
type Metrics struct {
	MAE        float64 `json:"mae"`
	RMSE       float64 `json:"rmse"`
	WAPE       float64 `json:"wape"`
	MASEMean   float64 `json:"mase_mean"`
	MASEMedian float64 `json:"mase_median"`
	// HourWAPE and HourBias score the hour's volume (EVALUATION.md §1):
	// with F and Y the sums of a pair's 60 forecast and actual minutes,
	// sum |F - Y| / sum Y and sum F / sum Y (below 1 under-provisions).
	HourWAPE float64 `json:"hour_wape"`
	HourBias float64 `json:"hour_bias"`
	// HourBiasCI95 is the 95% interval of HourBias over bootstrap
	// resamples of the functions (BootstrapResamples, a fixed seed): how
	// far another draw of as many functions could move it.
	// Absent when no resample has an invocation.
	HourBiasCI95 *[2]float64 `json:"hour_bias_ci95,omitempty"`
	// Pairs is the number of (function, origin) pairs scored.
	Pairs int `json:"pairs"`
}

// Accumulator sums errors over (function, origin) pairs.
type Accumulator struct {
	abs, sq, actual float64
	// hourAbs and hourForecast sum |F - Y| and F over pairs.
	hourAbs, hourForecast float64
	n                     int
	perFunc               map[int]*funcErr
}

type funcErr struct {
	abs   float64
	n     int
	scale float64
	// hourF and hourY sum the function's forecast and actual hours
	hourF, hourY float64
}

// BootstrapResamples is how many resamples of the functions HourBiasCI95
// is taken from.
const BootstrapResamples = 1000

// NewAccumulator starts an empty score.
func NewAccumulator() *Accumulator { return &Accumulator{perFunc: map[int]*funcErr{}} }

// NaiveScale is MASE's denominator: the mean absolute one-step change of
// the series over minutes 1..ScaleEnd; a function whose scale is 0 uses 1.
func NaiveScale(series []float64) float64 {
	end := min(ScaleEnd, len(series))
	var s float64
	for t := 1; t < end; t++ {
		s += math.Abs(series[t] - series[t-1])
	}
	if end < 2 || s == 0 {
		return 1
	}
	return s / float64(end-1)
}

// Add scores one forecast of function fn (index) against the actual values.
func (a *Accumulator) Add(fn int, scale float64, forecast, actual []float64) {
	f := a.perFunc[fn]
	if f == nil {
		f = &funcErr{scale: scale}
		a.perFunc[fn] = f
	}
	var fSum, ySum float64
	for h := range actual {
		fSum += forecast[h]
		ySum += actual[h]
		e := forecast[h] - actual[h]
		a.abs += math.Abs(e)
		a.sq += e * e
		a.actual += actual[h]
		f.abs += math.Abs(e)
		f.n++
	}
	a.n += len(actual)
	a.hourAbs += math.Abs(fSum - ySum)
	a.hourForecast += fSum
	f.hourF += fSum
	f.hourY += ySum
}

// hourBiasCI95 resamples the functions with replacement and takes the
// 2.5th and 97.5th percentiles of sum F / sum Y (resamples without any
// actual invocation left out).
func (a *Accumulator) hourBiasCI95() *[2]float64 {
	fns := make([]int, 0, len(a.perFunc))
	for fn := range a.perFunc {
		fns = append(fns, fn)
	}
	sort.Ints(fns) // the same resamples whatever the map's order
	rng := rand.New(rand.NewPCG(uint64(len(fns)), 7))
	biases := make([]float64, 0, BootstrapResamples)
	for range BootstrapResamples {
		var f, y float64
		for range fns {
			e := a.perFunc[fns[rng.IntN(len(fns))]]
			f += e.hourF
			y += e.hourY
		}
		if y > 0 {
			biases = append(biases, f/y)
		}
	}
	if len(biases) == 0 {
		return nil
	}
	sort.Float64s(biases)
	at := func(q float64) float64 { return biases[min(len(biases)-1, int(q*float64(len(biases))))] }
	return &[2]float64{at(0.025), at(0.975)}
}

// Functions is the number of distinct functions scored.
func (a *Accumulator) Functions() int { return len(a.perFunc) }

// Metrics computes the scores.
func (a *Accumulator) Metrics() Metrics {
	if a.n == 0 {
		return Metrics{}
	}
	m := Metrics{MAE: a.abs / float64(a.n), RMSE: math.Sqrt(a.sq / float64(a.n)), Pairs: a.n / Horizon}
	if a.actual > 0 {
		m.WAPE = a.abs / a.actual
		m.HourWAPE = a.hourAbs / a.actual
		m.HourBias = a.hourForecast / a.actual
		m.HourBiasCI95 = a.hourBiasCI95()
	} else {
		m.WAPE, m.HourWAPE, m.HourBias = math.NaN(), math.NaN(), math.NaN()
	}
	mase := make([]float64, 0, len(a.perFunc))
	for _, f := range a.perFunc {
		mase = append(mase, f.abs/float64(f.n)/f.scale)
	}
	sort.Float64s(mase)
	var s float64
	for _, v := range mase {
		s += v
	}
	m.MASEMean = s / float64(len(mase))
	if k := len(mase); k%2 == 1 {
		m.MASEMedian = mase[k/2]
	} else {
		m.MASEMedian = (mase[k/2-1] + mase[k/2]) / 2
	}
	return m
}

// Naive repeats the last observed minute.
func Naive(history []float64) []float64 {
	out := make([]float64, Horizon)
	for h := range out {
		out[h] = history[len(history)-1]
	}
	return out
}

// Mean60 repeats the mean of the last 60 observed minutes.
func Mean60(history []float64) []float64 {
	w := history[max(0, len(history)-60):]
	var s float64
	for _, v := range w {
		s += v
	}
	out := make([]float64, Horizon)
	for h := range out {
		out[h] = s / float64(len(w))
	}
	return out
}
