package oodlog

import (
	"strconv"
	"testing"
	"time"
)

// TestRecentLogsAFunctionOnceAnEvery: a function is due once per Every,
// others independently, and the functions not logged within Every are
// forgotten as new ones come (the memory follows the functions logged
// lately, not every function ever seen).
func TestRecentLogsAFunctionOnceAnEvery(t *testing.T) {
	r := &Recent{Every: time.Hour}
	t0 := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	steps := []struct {
		function string
		at       time.Duration
		want     bool
	}{
		{"a", 0, true}, {"a", time.Minute, false}, {"b", time.Minute, true},
		{"a", 59 * time.Minute, false}, {"a", time.Hour, true}, {"b", time.Hour, false},
		{"b", time.Hour + time.Minute, true},
	}
	for _, s := range steps {
		if got := r.Due(s.function, t0.Add(s.at)); got != s.want {
			t.Fatalf("%s at %v: due %v, want %v", s.function, s.at, got, s.want)
		}
	}
	// a day of new functions each minute: the old ones are forgotten
	for m := range 24 * 60 {
		for k := range 10 {
			r.Due("f"+strconv.Itoa(m*10+k), t0.Add(2*time.Hour+time.Duration(m)*time.Minute))
		}
	}
	if n := len(r.last); n > 4*60*10 {
		t.Fatalf("%d functions remembered; about 600 were logged within the last hour", n)
	}
}
