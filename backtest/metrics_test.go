package backtest

import (
	"context"
	"math"
	"testing"

	"github.com/mesp-project/mesp/trace"
)

func TestMetricsByHand(t *testing.T) {
	// Two functions, one forecast each of Horizon minutes.
	// f0: forecast 2, actual 1 -> |e| = 1 each minute; scale 2.
	// f1: forecast 0, actual 3 -> |e| = 3 each minute; scale 1 (zero scale).
	a := NewAccumulator()
	a.Add(0, 2, fill(2), fill(1))
	a.Add(1, 1, fill(0), fill(3))
	m := a.Metrics()
	cases := []struct {
		name      string
		got, want float64
	}{
		{"MAE", m.MAE, 2},
		{"RMSE", m.RMSE, math.Sqrt(5)},
		{"WAPE", m.WAPE, 1},             // sum|e| / sum actual = (60 + 180) / (60 + 180)
		{"MASE mean", m.MASEMean, 1.75}, // (1/2 + 3/1) / 2
		{"MASE median", m.MASEMedian, 1.75},
	}
	for _, tc := range cases {
		if math.Abs(tc.got-tc.want) > 1e-12 {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	if m.Pairs != 2 {
		t.Errorf("pairs = %d, want 2", m.Pairs)
	}
}

func fill(v float64) []float64 {
	out := make([]float64, Horizon)
	for i := range out {
		out[i] = v
	}
	return out
}

func TestNaiveScale(t *testing.T) {
	s := make([]float64, 1440)
	for i := range s {
		s[i] = float64(i % 2 * 4) // 0,4,0,4: every step changes by 4
	}
	if got := NaiveScale(s); got != 4 {
		t.Fatalf("scale %v, want 4", got)
	}
	for i := 1080; i < 1440; i++ {
		s[i] = 1e6 // minutes after 1080 are not part of the scale
	}
	if got := NaiveScale(s); got != 4 {
		t.Fatalf("scale %v after changing minutes > 1080, want 4", got)
	}
	if got := NaiveScale(make([]float64, 1440)); got != 1 {
		t.Fatalf("zero series scale %v, want 1", got)
	}
}

func TestBaselines(t *testing.T) {
	h := make([]float64, 200)
	for i := range h {
		h[i] = float64(i)
	}
	if Naive(h)[59] != 199 {
		t.Fatal("naive must repeat the last value")
	}
	if got := Mean60(h)[0]; got != (140.0+199.0)/2 {
		t.Fatalf("mean60 = %v", got)
	}
}

func TestRunScoresSameRows(t *testing.T) {
	counts := make([]float64, 1440)
	for i := range counts {
		counts[i] = float64(i % 5)
	}
	fns := []trace.Function{{ID: "a", Counts: counts}, {ID: "b", Counts: counts}}
	res, err := Run(context.Background(), fns, Baselines(), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, m := range res.Forecasters {
		if m.Pairs != len(fns)*len(Origins) {
			t.Errorf("%s scored %d pairs, want %d", name, m.Pairs, len(fns)*len(Origins))
		}
	}
	// mean60 of a period-5 pattern over 60 minutes is exactly 2; the
	// actual cycles 0..4: MAE = mean |2 - {0,1,2,3,4}| = 1.2.
	if got := res.Forecasters["mean60"].MAE; math.Abs(got-1.2) > 1e-12 {
		t.Errorf("mean60 MAE %v, want 1.2", got)
	}
	if _, err := Run(context.Background(), []trace.Function{{ID: "short", Counts: counts[:1000]}}, Baselines(), "", nil); err == nil {
		t.Error("a function shorter than the last origin + horizon must be refused")
	}
}

func TestHourVolumeByHand(t *testing.T) {
	// pair 0: a pulse of 60 forecast in minute 1 that comes in minute 2:
	// every minute is wrong (WAPE 2) but the hour is right.
	// pair 1: 1 a minute forecast, 2 a minute come: F = 60, Y = 120.
	pulse := func(at int) []float64 {
		s := make([]float64, Horizon)
		s[at] = 60
		return s
	}
	cases := []struct {
		name               string
		forecast, actual   [][]float64
		wape, hwape, hbias float64
	}{
		{"jittered pulse", [][]float64{pulse(0)}, [][]float64{pulse(1)}, 2, 0, 1},
		{"half the rate", [][]float64{fill(1)}, [][]float64{fill(2)}, 0.5, 0.5, 0.5},
		{"both pairs", [][]float64{pulse(0), fill(1)}, [][]float64{pulse(1), fill(2)},
			(120 + 60) / 180.0, 60 / 180.0, 120 / 180.0},
		{"over-forecast", [][]float64{fill(3)}, [][]float64{fill(2)}, 0.5, 0.5, 1.5},
	}
	for _, tc := range cases {
		a := NewAccumulator()
		for i := range tc.forecast {
			a.Add(i, 1, tc.forecast[i], tc.actual[i])
		}
		m := a.Metrics()
		for _, c := range []struct {
			what      string
			got, want float64
		}{{"wape", m.WAPE, tc.wape}, {"hour_wape", m.HourWAPE, tc.hwape}, {"hour_bias", m.HourBias, tc.hbias}} {
			if math.Abs(c.got-c.want) > 1e-12 {
				t.Errorf("%s: %s = %v, want %v", tc.name, c.what, c.got, c.want)
			}
		}
	}
}

// TestHourBiasIntervalByHand: with every function's hours alike the
// interval is the bias itself; with one function holding the whole
// shortfall it spans the biases a resample can give, and it contains the
// bias; two runs give the same interval.
func TestHourBiasIntervalByHand(t *testing.T) {
	alike := NewAccumulator()
	for i := range 50 {
		alike.Add(i, 1, fill(1), fill(2))
	}
	if ci := alike.Metrics().HourBiasCI95; ci == nil || ci[0] != 0.5 || ci[1] != 0.5 {
		t.Fatalf("identical functions: interval %v, want [0.5 0.5]", ci)
	}
	skewed := func() Metrics {
		a := NewAccumulator()
		for i := range 20 {
			a.Add(i, 1, fill(1), fill(1))
		}
		a.Add(20, 1, fill(1), fill(20)) // one function far above its forecast
		return a.Metrics()
	}
	m := skewed()
	ci := m.HourBiasCI95
	// resamples without the outlier have bias 1, with two copies of it 0.35
	if ci == nil || !(ci[0] < m.HourBias && m.HourBias < ci[1]) || ci[1] != 1 || ci[0] > 0.5 {
		t.Fatalf("one outlier: bias %v, interval %v", m.HourBias, ci)
	}
	if again := skewed().HourBiasCI95; *again != *ci {
		t.Fatalf("two runs: %v and %v", *ci, *again)
	}
	if NewAccumulator().Metrics().HourBiasCI95 != nil {
		t.Fatal("an empty score has an interval")
	}
}
