package provision

import "testing"

func TestIdleBefore(t *testing.T) {
	day := make([]float64, End)
	day[1079-1], day[1085-1] = 1, 3
	idle := IdleBefore(day)
	for _, c := range []struct{ minute, want int }{{1081, 1}, {1085, 5}, {1086, 0}, {1090, 4}} {
		if got := idle[c.minute-Start]; got != c.want {
			t.Errorf("minute %d: idle %d, want %d", c.minute, got, c.want)
		}
	}
	if got := IdleBefore(make([]float64, End))[0]; got != Start-1 {
		t.Errorf("never invoked: idle %d, want %d", got, Start-1)
	}
}

// One function that pauses 5 minutes and comes back, and its silent copy
// whose model keeps it warm 20-29 idle minutes after its last call: a
// second threshold from 10 idle minutes keeps the restart warm and the
// copy cold; one threshold for all (From beyond every gap) cannot.
func TestSilenceFrontierByHand(t *testing.T) {
	day := make([]float64, End)
	day[1079-1], day[1085-1] = 1, 1
	active := Inputs{Days: [][]float64{day}, MespP: [][]float64{make([]float64, End-Start+1)}}
	active.MespP[0][1085-Start] = 0.1
	active.MespP[0][1200-Start] = 0.05
	silentDays, _ := SilentCopies(active.Days)
	silent := SilentInputs{Days: silentDays, MespP: [][]float64{make([]float64, End-Start+1)}}
	for m := 1100; m < 1110; m++ {
		silent.MespP[0][m-Start] = 0.1
	}
	got, err := SilenceFrontier(active, silent, []float64{0.01, 0.2}, []int{10, 1000}, 5.0/360)
	if err != nil {
		t.Fatal(err)
	}
	want := []FrontierPoint{
		{From: 10, Threshold: 0.01, Silent: 0.2, Found: true, ColdStarts: 0, IdleMinutes: 0},
		{From: 1000, Threshold: 0.2, Silent: 0.2, Found: true, ColdStarts: 1, IdleMinutes: 0},
	}
	for k, w := range want {
		g := got[k]
		if g.From != w.From || g.Threshold != w.Threshold || g.Silent != w.Silent || g.Found != w.Found || g.ColdStarts != w.ColdStarts || g.IdleMinutes != w.IdleMinutes {
			t.Errorf("from %d: got %+v, want %+v", w.From, g, w)
		}
		if g.ReferenceIdleMinutes != 23 || g.ReferenceColdStarts != 0 || g.SilentMinutes != End-Start+1 {
			t.Errorf("from %d: keepalive10 %d cold, %d idle, %d silent minutes; want 0, 23, %d", w.From, g.ReferenceColdStarts, g.ReferenceIdleMinutes, g.SilentMinutes, End-Start+1)
		}
	}
	// Held to no warm silent minute and to no idle at all but the copy's
	// ten, nothing qualifies when the copy must stay warm: bound 0 with
	// the copy's p above every threshold.
	for m := 1100; m < 1110; m++ {
		silent.MespP[0][m-Start] = 0.5
	}
	got, _ = SilenceFrontier(active, silent, []float64{0.01, 0.2}, []int{10}, 0)
	if got[0].Found {
		t.Errorf("copy warm above every threshold, bound 0: found %+v", got[0])
	}
	if _, err := SilenceFrontier(active, SilentInputs{}, []float64{0.01}, []int{10}, 0.01); err == nil {
		t.Error("no silent copies: no error")
	}
}
