package provision

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// hazard is a policy that reads the whole history it is given (and tries
// to read past it): the share of minutes so far with an invocation, plus
// whatever lies beyond len within the slice's capacity.
func hazard(_ context.Context, hs [][]float64) ([]float64, error) {
	out := make([]float64, len(hs))
	for i, h := range hs {
		n := 0.0
		for _, v := range h[:cap(h)] {
			if v > 0 {
				n++
			}
		}
		out[i] = n / float64(len(h))
	}
	return out, nil
}

// TestMinutelyLoopNeverSeesMinuteM: changing minutes m..End of a day
// leaves every decision for minutes up to m exactly as it was, and each
// decision for minute m is made from exactly m-1 minutes.
func TestMinutelyLoopNeverSeesMinuteM(t *testing.T) {
	base := day(100, 700, 1079, 1085, 1090, 1200, 1201, 1300, 1440)
	var lengths []int
	rec := func(ctx context.Context, hs [][]float64) ([]float64, error) {
		lengths = append(lengths, len(hs[0]))
		return hazard(ctx, hs)
	}
	ref, err := MinutelyLoop(context.Background(), [][]float64{base}, rec, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, n := range lengths {
		if n != Start-1+k {
			t.Fatalf("decision for minute %d saw %d minutes, want %d", Start+k, n, Start-1+k)
		}
	}
	for _, m := range []int{Start, 1100, 1202, End} {
		changed := append([]float64(nil), base...)
		for i := m - 1; i < End; i++ {
			changed[i] = 1000 // every minute from m on invoked
		}
		got, err := MinutelyLoop(context.Background(), [][]float64{changed}, hazard, nil)
		if err != nil {
			t.Fatal(err)
		}
		for mm := Start; mm <= m; mm++ {
			if got[0][mm-Start] != ref[0][mm-Start] {
				t.Fatalf("changing minutes %d.. changed the decision for minute %d", m, mm)
			}
		}
		if m < End && got[0][m+1-Start] == ref[0][m+1-Start] {
			t.Fatalf("the change at minute %d never reached the decision for minute %d: the test proves nothing", m, m+1)
		}
	}
}

func TestAtLeastAndPercentile(t *testing.T) {
	c := day(1081, 1082, 1090)
	p := make([]float64, End-Start+1)
	p[0], p[1], p[5], p[9] = 0.9, 0.4, 0.5, 0.1 // minutes 1081, 1082, 1086, 1090
	o := Simulate(c, AtLeast(p, 0.5))
	// Warm 1081 (invoked), 1086 (idle). Cold: 1082, 1090.
	if o.ColdStarts != 2 || o.IdleMinutes != 1 || o.InvokedMinutes != 3 {
		t.Fatalf("got %+v", o)
	}
	var agg Outcome
	for _, r := range []Outcome{{ColdStarts: 1, InvokedMinutes: 4, ColdStartRate: 0.25}, {ColdStarts: 0, InvokedMinutes: 2},
		{ColdStarts: 2, InvokedMinutes: 2, ColdStartRate: 1}, {ColdStarts: 1, InvokedMinutes: 2, ColdStartRate: 0.5}, {IdleMinutes: 9}} {
		agg.Add(r)
	}
	agg.Finish()
	// Rates of functions with an invoked minute: 0, 0.25, 0.5, 1; the
	// nearest-rank 75th percentile is the third, 0.5.
	if agg.P75FunctionColdStartRate != 0.5 || agg.ColdStarts != 4 || agg.IdleMinutes != 9 || math.Abs(agg.ColdStartRate-0.4) > 1e-12 {
		t.Fatalf("got %+v", agg)
	}
}

// TestEvaluateReadsCurvesAtTheReferenceIdle: a perfect forecaster has no
// cold starts and no idle minutes, so it beats every keep-alive window; a
// forecaster that is always sure of nothing is cold on every invocation.
func TestEvaluateReadsCurvesAtTheReferenceIdle(t *testing.T) {
	days := [][]float64{day(1000, 1082, 1090, 1095, 1300), day(1085, 1086, 1087, 1400)}
	perfect := make([][]float64, len(days))
	nothing := make([][]float64, len(days))
	for i, d := range days {
		perfect[i] = make([]float64, End-Start+1)
		nothing[i] = make([]float64, End-Start+1)
		for m := Start; m <= End; m++ {
			if d[m-1] > 0 {
				perfect[i][m-Start] = 1
			}
		}
	}
	r := Evaluate(Inputs{Days: days, MespP: perfect, DenseP: nothing, DefaultThreshold: 0.5})
	if len(r.KeepAlive) != len(KeepAliveWindows) || r.Comparison.Reference.Window != ReferenceWindow {
		t.Fatalf("keep-alive frontier %d points, reference %d", len(r.KeepAlive), r.Comparison.Reference.Window)
	}
	d := r.MespMinutelyDefault
	if d == nil || d.ColdStarts != 0 || d.IdleMinutes != 0 || d.InvokedMinutes != 8 {
		t.Fatalf("default %+v", d)
	}
	best := r.Comparison.AtReferenceIdle["mesp_minutely"]
	if best.ColdStarts != 0 || best.ColdStartsOverReference != 0 {
		t.Fatalf("mesp at the reference idle: %+v", best)
	}
	for _, v := range r.Comparison.MespVsKeepAlive {
		ka := r.KeepAlive[indexOf(v.Window)]
		if v.Beaten != (ka.ColdStarts > 0) {
			t.Fatalf("window %d (%d cold starts): beaten %v", v.Window, ka.ColdStarts, v.Beaten)
		}
	}
	dn := r.Comparison.AtReferenceIdle["dense_minutely"]
	if dn.ColdStarts != 8 || dn.IdleMinutes != 0 {
		t.Fatalf("dense (never sure) at the reference idle: %+v", dn)
	}
	if r.MespHourly != nil || r.PeerLightGBMMinutely != nil {
		t.Fatal("policies without inputs must be left out")
	}
}

func indexOf(w int) int {
	for i, x := range KeepAliveWindows {
		if x == w {
			return i
		}
	}
	return -1
}

func TestReadPredictions(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "p.csv")
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var full strings.Builder
	full.WriteString("function,minute,p_invoke\n")
	for m := Start; m <= End; m++ {
		full.WriteString("f1," + strconv.Itoa(m) + ",0.25\n")
		full.WriteString("other," + strconv.Itoa(m) + ",1\n")
	}
	p, err := ReadPredictions(write(full.String()), []string{"f1"})
	if err != nil || len(p) != 1 || p[0][0] != 0.25 || p[0][End-Start] != 0.25 {
		t.Fatalf("%v %v", p, err)
	}
	for name, body := range map[string]string{
		"wrong header":  "fn,minute,p\n",
		"missing":       "function,minute,p_invoke\nf1,1081,0.5\n",
		"out of range":  "function,minute,p_invoke\nf1,1081,1.5\n",
		"bad minute":    "function,minute,p_invoke\nf1,1080,0.5\n",
		"twice":         "function,minute,p_invoke\nf1,1081,0.5\nf1,1081,0.5\n",
		"not a number":  "function,minute,p_invoke\nf1,1081,x\n",
		"short record":  "function,minute,p_invoke\nf1,1081\n",
		"not a minute ": "function,minute,p_invoke\nf1,x,0.5\n",
	} {
		if _, err := ReadPredictions(write(body), []string{"f1"}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestReadQuantilePredictions(t *testing.T) {
	p := filepath.Join(t.TempDir(), "q.csv")
	head := "function,minute,q0.5,q0.75,q0.9,q0.95,q0.99\n"
	var full strings.Builder
	full.WriteString(head)
	for m := Start; m <= End; m++ {
		full.WriteString("f1," + strconv.Itoa(m) + ",1,2,3,4," + strconv.Itoa(m) + "\n")
	}
	if err := os.WriteFile(p, []byte(full.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	qs, err := ReadQuantilePredictions(p, []string{"f1"})
	if err != nil || len(qs) != len(PeerQuantileLevels) {
		t.Fatalf("%v %v", qs, err)
	}
	if qs[2].Q != 0.9 || qs[2].Ahead[0][0][0] != 3 || qs[4].Ahead[0][End-Start][0] != End {
		t.Fatalf("q0.9 %v, q0.99 at the last minute %v", qs[2].Ahead[0][0], qs[4].Ahead[0][End-Start])
	}
	for name, body := range map[string]string{
		"negative":      head + "f1,1081,1,2,-3,4,5\n",
		"NaN":           head + "f1,1081,1,2,NaN,4,5\n",
		"infinite":      head + "f1,1081,1,2,3,4,+Inf\n",
		"other columns": "function,minute,q0.5,q0.9\nf1,1081,1,2\n",
		"missing":       head + "f1,1081,1,2,3,4,5\n",
	} {
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadQuantilePredictions(p, []string{"f1"}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
