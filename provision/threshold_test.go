package provision

import "testing"

func TestChooseThresholdHoldsTheMixsIdleOverResampledFunctions(t *testing.T) {
	// 20 functions invoked every 20 minutes: keepalive10 has 18 cold
	// starts and 180 idle minutes each in the window, none on the silent
	// copies. p_invoke: 0.06 on invoked minutes (0.02 for function 0), 0
	// between; the silent copies of functions 0..8 get 0.05 on every minute.
	// At th <= 0.05 the mix spends 9 x 360 = 3,240 idle minutes against
	// keepalive10's 3,600: within it on the sample, over it in most
	// resamples that draw more of those nine. The choice must be above 0.05
	// (idle 0), where function 0's 18 invocations are cold.
	const n = 20
	day := make([]float64, End)
	for m := 0; m < End; m += 20 {
		day[m] = 1
	}
	var active Inputs
	var silent SilentInputs
	for range n {
		active.Days = append(active.Days, day)
	}
	silent.Days, silent.Hours = SilentCopies(active.Days)
	for i := range n {
		pa := make([]float64, End-Start+1)
		ps := make([]float64, End-Start+1)
		for k := range pa {
			if day[Start-1+k] > 0 {
				pa[k] = 0.06
				if i == 0 {
					pa[k] = 0.02
				}
			}
			if i < 9 {
				ps[k] = 0.05
			}
		}
		active.MespP = append(active.MespP, pa)
		silent.MespP = append(silent.MespP, ps)
	}
	c, err := ChooseThreshold(active, silent, ThresholdGrid, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if c.ReferenceColdStarts != 18*n || c.ReferenceIdleMinutes != 180*n {
		t.Fatalf("keepalive10 on the mix: %d cold starts, %d idle; want %d, %d", c.ReferenceColdStarts, c.ReferenceIdleMinutes, 18*n, 180*n)
	}
	if !(c.Threshold > 0.05 && c.Threshold <= 0.06) || c.ColdStarts != 18 || c.IdleMinutes != 0 || c.SilentIdleMinutes != 0 {
		t.Fatalf("chose %+v; want a threshold in (0.05, 0.06] with function 0's 18 cold starts and no idle minute", c)
	}
	if c.IdleRatioUpper > 1 || c.SilentMinutes != n*(End-Start+1) {
		t.Fatalf("idle ratio upper %v, silent minutes %d", c.IdleRatioUpper, c.SilentMinutes)
	}

	// Without the silent copies' warm minutes the cheapest threshold wins:
	// the silent functions are what moved the choice.
	for i := range n {
		clear(silent.MespP[i])
	}
	if c, err = ChooseThreshold(active, silent, ThresholdGrid, 0, 0); err != nil {
		t.Fatal(err)
	}
	if c.Threshold != ThresholdGrid[0] || c.ColdStarts != 0 {
		t.Fatalf("with silent copies kept cold: chose %v with %d cold starts, want the grid's lowest with none", c.Threshold, c.ColdStarts)
	}

	// One silent copy of 20 at 0.03 every minute: 5% of the silent
	// minutes warm at any threshold that keeps function 0 (0.02) warm,
	// within keepalive10's idle. Bound to 1%, the choice moves above 0.03,
	// where function 0's 18 invocations are cold again.
	for k := range silent.MespP[0] {
		silent.MespP[0][k] = 0.03
	}
	if c, err = ChooseThreshold(active, silent, ThresholdGrid, 0, 0); err != nil || c.Threshold != ThresholdGrid[0] || c.SilentIdleMinutes != 360 || c.ColdStarts != 0 {
		t.Fatalf("unbound: chose %+v (%v), want the grid's lowest with no cold start and 360 silent minutes warm", c, err)
	}
	if c, err = ChooseThreshold(active, silent, ThresholdGrid, 0.01, 0); err != nil || !(c.Threshold > 0.03 && c.Threshold <= 0.06) ||
		c.SilentIdleMinutes != 0 || c.ColdStarts != 18 {
		t.Fatalf("bound to 1%%: chose %+v (%v), want a threshold in (0.03, 0.06] with 18 cold starts and no silent minute warm", c, err)
	}

	if _, err := ChooseThreshold(active, SilentInputs{}, ThresholdGrid, 0, 0); err == nil {
		t.Fatal("no silent copies: no error")
	}
}

func TestQuantileInterpolatesAsNumpy(t *testing.T) {
	xs := []float64{4, 1, 3, 2}
	for _, tc := range []struct{ q, want float64 }{{0, 1}, {1, 4}, {0.5, 2.5}, {0.95, 3.85}} {
		if got := quantile(xs, tc.q); got < tc.want-1e-12 || got > tc.want+1e-12 {
			t.Errorf("quantile(%v) = %v, want %v", tc.q, got, tc.want)
		}
	}
	if xs[0] != 4 {
		t.Error("quantile sorted its input")
	}
}
