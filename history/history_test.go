package history_test

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mesp-project/mesp/history"
	"github.com/mesp-project/mesp/internal/fixture"
)

const day = int64(29_000_000) // a Unix minute (2025) where the test's day starts

// A day of real counts of every fixture function, pushed by 16 goroutines
// in shuffled order with every minute sent twice, reads back exactly.
func TestConcurrentWritersLoseNoMinute(t *testing.T) {
	fns := fixture.Rows(t)
	var obs []history.Observation
	for _, f := range fns {
		for m, c := range f.Counts {
			o := history.Observation{ID: f.ID, Minute: day + int64(m), Count: c}
			obs = append(obs, o, o)
		}
	}
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(obs), func(i, j int) { obs[i], obs[j] = obs[j], obs[i] })
	s := history.New(1440, len(fns))
	var wg sync.WaitGroup
	const writers = 16
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w * 64; i < len(obs); i += writers * 64 {
				if _, _, err := s.Observe(obs[i:min(i+64, len(obs))]); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, f := range fns {
		got, err := s.Window(f.ID, day+1440)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, f.Counts) {
			t.Fatalf("%s: read back %d minutes, differing from the %d pushed", f.ID, len(got), len(f.Counts))
		}
	}
}

func TestObserveAndWindow(t *testing.T) {
	obs := func(pairs ...int64) []history.Observation {
		var out []history.Observation
		for i := 0; i < len(pairs); i += 2 {
			out = append(out, history.Observation{ID: "f", Minute: day + pairs[i], Count: float64(pairs[i+1])})
		}
		return out
	}
	cases := []struct {
		name   string
		length int
		push   []history.Observation
		end    int64
		want   []float64
		stale  int
	}{
		{"in order", 5, obs(0, 1, 1, 2, 2, 3), 3, []float64{1, 2, 3}, 0},
		{"a resent minute replaces, not adds", 5, obs(0, 1, 1, 2, 1, 7), 2, []float64{1, 7}, 0},
		{"out of order", 5, obs(2, 3, 0, 1, 1, 2), 3, []float64{1, 2, 3}, 0},
		{"skipped minutes are zero", 5, obs(0, 4, 3, 5), 4, []float64{4, 0, 0, 5}, 0},
		{"silent since: zeros up to end", 5, obs(0, 4, 1, 6), 4, []float64{4, 6, 0, 0}, 0},
		{"the window keeps the last length minutes", 3, obs(0, 1, 1, 2, 2, 3, 3, 4, 4, 5), 5, []float64{3, 4, 5}, 0},
		{"older than the window: dropped, counted", 3, obs(5, 1, 1, 9), 6, []float64{1}, 1},
		{"a late minute inside the window extends it back", 4, obs(5, 1, 3, 2), 6, []float64{2, 0, 1}, 0},
		{"a long silence clears every slot", 3, obs(0, 1, 1, 2, 10, 3), 11, []float64{0, 0, 3}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := history.New(tc.length, 10)
			_, stale, err := s.Observe(tc.push)
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.Window("f", day+tc.end)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) || stale != tc.stale {
				t.Fatalf("window %v (stale %d), want %v (stale %d)", got, stale, tc.want, tc.stale)
			}
			// appended into a buffer that holds other windows (and
			// nonzero garbage past them), the same, the others intact
			buf := append(make([]float64, 0, 64), 7, 8)
			garbage := buf[:cap(buf)]
			for i := range garbage[2:] {
				garbage[2+i] = 99
			}
			buf, err = s.AppendWindow(buf, "f", day+tc.end)
			if err != nil || !slices.Equal(buf[:2], []float64{7, 8}) || !slices.Equal(buf[2:], tc.want) {
				t.Fatalf("appended %v (%v), want 7 8 then %v", buf, err, tc.want)
			}
			if kept, err := s.AppendWindow(buf, "unknown", day+tc.end); err == nil || !slices.Equal(kept, buf) {
				t.Fatalf("an unknown function: %v, %v; want an error and the buffer as it was", kept, err)
			}
			// one minute at a time, each as the window ending after it
			// gives it, from before the first minute to past the newest
			for m := day - 2; m <= day+tc.end+2; m++ {
				w, _ := s.Window("f", m+1)
				want := 0.0
				if len(w) > 0 {
					want = w[len(w)-1]
				}
				if got, err := s.At("f", m); err != nil || got != want {
					t.Fatalf("At minute %d: %v (%v), want %v", m-day, got, err, want)
				}
			}
			if _, err := s.At("unknown", day); !errors.Is(err, history.ErrUnknown) {
				t.Fatalf("At an unknown function: %v, want ErrUnknown", err)
			}
		})
	}
}

func TestObserveRefuses(t *testing.T) {
	cases := []struct {
		name string
		o    history.Observation
		want error
	}{
		{"negative count", history.Observation{ID: "f", Minute: day, Count: -1}, history.ErrInvalid},
		{"NaN", history.Observation{ID: "f", Minute: day, Count: math.NaN()}, history.ErrInvalid},
		{"beyond float32", history.Observation{ID: "f", Minute: day, Count: 1e39}, history.ErrInvalid},
		{"beyond any function's minute (the graphs answered NaN)", history.Observation{ID: "f", Minute: day, Count: 1e34}, history.ErrInvalid},
		{"an id of a megabyte", history.Observation{ID: strings.Repeat("x", 1<<20), Minute: day, Count: 1}, history.ErrInvalid},
		{"a blank id", history.Observation{ID: " ", Minute: day, Count: 1}, history.ErrInvalid},
		{"no id", history.Observation{Minute: day, Count: 1}, history.ErrInvalid},
		{"no minute", history.Observation{ID: "f", Count: 1}, history.ErrInvalid},
		{"a function past the limit", history.Observation{ID: "third", Minute: day, Count: 1}, history.ErrFull},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := history.New(60, 2)
			if _, _, err := s.Observe([]history.Observation{{ID: "one", Minute: day, Count: 1}, {ID: "two", Minute: day, Count: 1}}); err != nil {
				t.Fatal(err)
			}
			if _, _, err := s.Observe([]history.Observation{tc.o}); !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if s.Len() != 2 {
				t.Fatalf("%d functions held after a refused observation", s.Len())
			}
		})
	}
	if _, err := history.New(60, 1).Window("nobody", day); !errors.Is(err, history.ErrUnknown) {
		t.Fatalf("unknown function: %v", err)
	}
}

// At the limit, a function silent for a whole window makes room for a new
// one (its history is all zeros by now); a live one never does.
func TestFullStoreDropsOnlySilentFunctions(t *testing.T) {
	s := history.New(60, 2)
	obs := func(id string, minute int64) []history.Observation {
		return []history.Observation{{ID: id, Minute: day + minute, Count: 1}}
	}
	for _, o := range [][]history.Observation{obs("old", 0), obs("live", 100)} {
		if _, _, err := s.Observe(o); err != nil {
			t.Fatal(err)
		}
	}
	// minute 100: "old" was last seen 100 minutes ago, more than the window
	if _, _, err := s.Observe(obs("new", 100)); err != nil {
		t.Fatalf("a new function with a silent one to drop: %v", err)
	}
	if _, err := s.Window("old", day+101); !errors.Is(err, history.ErrUnknown) {
		t.Fatalf("the silent function is still held: %v", err)
	}
	// "live" and "new" were both seen within the window: no room
	if _, _, err := s.Observe(obs("third", 120)); !errors.Is(err, history.ErrFull) {
		t.Fatalf("a third function beside two live ones: %v, want ErrFull", err)
	}
	if got, err := s.Window("live", day+101); err != nil || got[len(got)-1] != 1 {
		t.Fatalf("the live function lost its history: %v %v", got, err)
	}
}

// TestMinutesOlderThanTheDayAreStale: with a clock, a minute a day or a
// year before now is stale, never stored: for a function not yet held it
// would start its history then and invent a day of silence since (as a
// Prometheus sample stamped 1970 did).
func TestMinutesOlderThanTheDayAreStale(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 30, 0, time.UTC)
	current := now.Unix() / 60
	s := history.New(1440, 10).WithClock(func() time.Time { return now })
	cases := []struct {
		name   string
		minute int64
		stored bool
	}{
		{"a minute ago", current - 1, true},
		{"the day's first minute", current - 1440, true},
		{"a day and a minute ago", current - 1441, false},
		{"a year ago", current - 365*1440, false},
		{"1970", 1, false},
	}
	for _, c := range cases {
		id := "fn-" + strings.ReplaceAll(c.name, " ", "-")
		stored, stale, err := s.Observe([]history.Observation{{ID: id, Minute: c.minute, Count: 3}})
		if err != nil || (stored == 1) != c.stored || (stale == 1) == c.stored {
			t.Errorf("%s: stored %d stale %d err %v", c.name, stored, stale, err)
		}
		if _, err := s.Window(id, current); (err == nil) != c.stored {
			t.Errorf("%s: held after the push: %v", c.name, err == nil)
		}
	}
}

// TestMemoryPerFunction: what history.max_functions costs, as the docs
// state it, by the widest count a function's day holds (the store keeps a
// day at the narrowest width that holds it exactly: history/slots.go):
// about 1.6 KiB for whole counts up to 255, 3.1 KiB up to 65,535, 6.1 KiB
// for larger or fractional ones (what every function took before).
func TestMemoryPerFunction(t *testing.T) {
	const n = 20000
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("namespace-%02d/function-%06d", i%50, i)
	}
	for _, c := range []struct {
		count, most float64
	}{{1, 1.7}, {1000, 3.2}, {2.5, 6.2}} {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		s := history.New(1440, n)
		for _, id := range ids {
			if _, _, err := s.Observe([]history.Observation{{ID: id, Minute: day, Count: c.count}}); err != nil {
				t.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		perKiB := float64(after.HeapAlloc-before.HeapAlloc) / n / 1024
		t.Logf("counts like %v: %.2f KiB per function", c.count, perKiB)
		if perKiB > c.most {
			t.Fatalf("counts like %v: %.2f KiB per function, the docs say at most %v", c.count, perKiB, c.most)
		}
		runtime.KeepAlive(s)
	}
}

// TestAFloodOfNewIDsAtTheLimitSweepsOnce: at the function limit, each new
// id refused scanned every ring under the store's lock (23 ms at 100,000
// functions; a flood made reads 10x slower); now one sweep per minute of
// data.
func TestAFloodOfNewIDsAtTheLimitSweepsOnce(t *testing.T) {
	s := history.New(60, 2)
	s.Observe([]history.Observation{{ID: "a", Minute: day + 100, Count: 1}, {ID: "b", Minute: day + 100, Count: 1}})
	for i := range 1000 {
		if _, _, err := s.Observe([]history.Observation{{ID: fmt.Sprintf("new-%d", i), Minute: day + 100, Count: 1}}); !errors.Is(err, history.ErrFull) {
			t.Fatalf("new id %d: %v", i, err)
		}
	}
	if n := s.Sweeps(); n != 1 {
		t.Fatalf("%d sweeps for 1,000 refused ids in one minute", n)
	}
	// Later minutes sweep again: by minute 161 both have been silent for
	// the window and make room.
	if _, _, err := s.Observe([]history.Observation{{ID: "late", Minute: day + 161, Count: 1}}); err != nil || s.Sweeps() != 2 {
		t.Fatalf("minute 161: %v after %d sweeps", err, s.Sweeps())
	}
}
