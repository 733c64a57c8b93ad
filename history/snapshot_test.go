package history_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/mesp-project/mesp/history"
)

func filled(t *testing.T, n int) *history.Store {
	t.Helper()
	s := history.New(1440, 100)
	var obs []history.Observation
	for f := range n {
		for m := range 1440 {
			if (m*7+f)%5 != 0 {
				obs = append(obs, history.Observation{ID: fmt.Sprintf("ns/fn-%d", f), Minute: day + int64(m+f), Count: float64(m % (f + 3))})
			}
		}
	}
	if _, _, err := s.Observe(obs); err != nil {
		t.Fatal(err)
	}
	return s
}

// A snapshot brings every function's window back exactly.
func TestSnapshotRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.snap")
	s := filled(t, 20)
	if err := s.Save(path); err != nil {
		t.Fatal(err)
	}
	back := history.New(1440, 100)
	if n, err := back.Load(path); err != nil || n != 20 {
		t.Fatalf("loaded %d, %v", n, err)
	}
	for f := range 20 {
		id := fmt.Sprintf("ns/fn-%d", f)
		for _, end := range []int64{day + 1440 + int64(f), day + 2000} {
			a, _ := s.Window(id, end)
			b, err := back.Window(id, end)
			if err != nil || !slices.Equal(a, b) {
				t.Fatalf("%s at %d: %v", id, end, err)
			}
		}
	}
	if n, err := history.New(1440, 10).Load(filepath.Join(t.TempDir(), "none")); n != 0 || err != nil {
		t.Fatalf("a missing snapshot: %d %v", n, err)
	}
}

// A truncated or corrupt snapshot, or one of another window or too many
// functions, is refused whole: nothing is added.
func TestBadSnapshotsAreRefusedWhole(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "history.snap")
	if err := filled(t, 5).Save(path); err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(path)
	other := filepath.Join(dir, "other.snap")
	s60 := history.New(60, 10)
	s60.Observe([]history.Observation{{ID: "a", Minute: day, Count: 1}})
	s60.Save(other)
	otherLen, _ := os.ReadFile(other)
	cases := map[string][]byte{
		"empty":             {},
		"not a snapshot":    []byte("hello world, this is not it"),
		"half":              good[:len(good)/2],
		"all but one byte":  good[:len(good)-1],
		"a flipped byte":    flip(good, len(good)/3),
		"a flipped id byte": flip(good, 19),
		"another window":    otherLen,
	}
	for name, b := range cases {
		p := filepath.Join(dir, "case.snap")
		os.WriteFile(p, b, 0o644)
		s := history.New(1440, 100)
		if n, err := s.Load(p); !errors.Is(err, history.ErrSnapshot) || n != 0 || s.Len() != 0 {
			t.Errorf("%s: loaded %d (%d held), %v", name, n, s.Len(), err)
		}
	}
	if _, err := history.New(1440, 3).Load(path); !errors.Is(err, history.ErrSnapshot) {
		t.Errorf("5 functions into a store of 3: %v", err)
	}
}

func flip(b []byte, i int) []byte {
	c := slices.Clone(b)
	c[i] ^= 0x40
	return c
}

// Persist saves on its interval and once more at the stop.
func TestPersistSavesAtTheStop(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.snap")
	s := filled(t, 3)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go s.Persist(ctx, path, time.Hour, func(err error) { t.Error(err) }, done)
	s.Observe([]history.Observation{{ID: "late", Minute: day + 100, Count: 9}})
	cancel()
	<-done
	back := history.New(1440, 100)
	if n, err := back.Load(path); err != nil || n != 4 {
		t.Fatalf("after the stop: %d functions, %v", n, err)
	}
}
