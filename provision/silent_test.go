package provision

import "testing"

func TestSilentCopies(t *testing.T) {
	days := make([][]float64, 4)
	for i := range days {
		days[i] = make([]float64, End)
		for m := range days[i] {
			days[i][m] = 1
		}
	}
	silent, hours := SilentCopies(days)
	want := []int{6, 12, 24, 6}
	for i, s := range silent {
		if hours[i] != want[i] {
			t.Fatalf("copy %d silenced %d hours, want %d", i, hours[i], want[i])
		}
		for m, v := range s {
			if zero := m >= End-want[i]*60; zero != (v == 0) {
				t.Fatalf("copy %d (%dh) minute %d = %g", i, want[i], m+1, v)
			}
		}
		if days[i][End-1] != 1 {
			t.Fatal("the active day was changed")
		}
	}
}

func TestEvaluateSilentScoresIdleAndTheMix(t *testing.T) {
	// one active function invoked every 20 minutes; its silent copies. A
	// p_invoke of 0.5 on every minute keeps all warm; 0 keeps none.
	day := make([]float64, End)
	for m := 0; m < End; m += 20 {
		day[m] = 1
	}
	days := [][]float64{day, day, day}
	silentDays, hours := SilentCopies(days)
	p := func(v float64) [][]float64 {
		out := make([][]float64, 3)
		for i := range out {
			out[i] = make([]float64, End-Start+1)
			for k := range out[i] {
				out[i][k] = v
			}
		}
		return out
	}
	active := Inputs{Days: days, MespP: p(0.5), DenseP: p(0.5), DefaultThreshold: 0.1}
	silent := SilentInputs{Days: silentDays, MespP: p(0), DenseP: p(0.5), Hours: hours}
	reports, mix, err := EvaluateSilent(active, silent)
	if err != nil {
		t.Fatal(err)
	}
	if len(reports) != 3 {
		t.Fatalf("%d silent reports, want 3", len(reports))
	}
	for _, r := range reports {
		if r.Functions != 1 || r.Minutes != End-Start+1 {
			t.Fatalf("%dh: %d functions, %d minutes", r.SilentHours, r.Functions, r.Minutes)
		}
		if got := r.Policies["mesp_minutely_default"].IdleMinutes; got != 0 {
			t.Errorf("%dh: mesp at p 0 kept %d idle minutes", r.SilentHours, got)
		}
		if got := r.Policies["dense_minutely_default"].IdleMinutes; got != r.Minutes {
			t.Errorf("%dh: dense at p 0.5 kept %d idle minutes, want all %d", r.SilentHours, got, r.Minutes)
		}
		if r.Policies["keepalive10"].ColdStarts != 0 {
			t.Errorf("%dh: a silent function had cold starts", r.SilentHours)
		}
	}
	// keep-alive 10 on the 6-hour copy: the last invocation is at minute
	// 1061, so it is warm through 1071, before the simulated window
	if got := reports[0].Policies["keepalive10"].IdleMinutes; got != 0 {
		t.Errorf("6h keepalive10 idle %d, want 0 (last invocation at minute 1061)", got)
	}
	// the mix: cold starts of the active functions only, idle of both
	act := Evaluate(active)
	if mix.MespMinutelyDefault.ColdStarts != act.MespMinutelyDefault.ColdStarts {
		t.Errorf("mix cold starts %d, active %d", mix.MespMinutelyDefault.ColdStarts, act.MespMinutelyDefault.ColdStarts)
	}
	if want := act.MespMinutelyDefault.IdleMinutes; mix.MespMinutelyDefault.IdleMinutes != want {
		t.Errorf("mix mesp idle %d, want the active %d (silent at p 0 add none)", mix.MespMinutelyDefault.IdleMinutes, want)
	}
	if want := act.MespMinutelyDefault.IdleMinutes + 3*(End-Start+1); mix.DenseMinutely[0].IdleMinutes != want {
		t.Errorf("mix dense idle %d, want %d", mix.DenseMinutely[0].IdleMinutes, want)
	}
	if _, _, err := EvaluateSilent(active, SilentInputs{Days: silent.Days, MespP: silent.MespP, DenseP: silent.DenseP, Hours: hours[:2]}); err == nil {
		t.Error("mismatched silences accepted")
	}
}
