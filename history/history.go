// Package history keeps, per function, the last day of per-minute
// invocation counts inside MESP, so that a caller (KEDA, a platform's
// control loop) can ask for a decision by function name instead of
// sending 1440 numbers on every call. It is fed by pushes (POST
// /v1/observe) and by a Prometheus reader; both set a minute's count, so
// that a minute sent twice, late or out of order, ends the same.
package history

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/mesp-project/mesp/funcid"
	"github.com/mesp-project/mesp/trace"
)

// Observation is one function's invocation count in one minute. Minute is
// the Unix time of the minute's start divided by 60.
type Observation struct {
	ID     string
	Minute int64
	Count  float64
}

// ErrUnknown marks a function the store holds no history for.
var ErrUnknown = errors.New("history: no history for function")

// ErrFull marks an observation of a new function refused because the store
// already holds its limit of functions.
var ErrFull = errors.New("history: function limit reached")

// ErrInvalid marks an unusable observation.
var ErrInvalid = errors.New("history: bad observation")

// Store holds a ring of the last Length minutes per function, each day at
// the narrowest width that holds its counts (slots: a byte a minute for
// whole counts up to 255; held per function with its ring and id, about
// 1.6 KiB, 3.1 KiB up to 65,535, 6.1 KiB for larger or fractional
// counts: TestMemoryPerFunction), and at most MaxFunctions functions. When a new function arrives at the limit, the
// functions silent for a whole window (their history is all zeros by now,
// so nothing is lost but their names) make room; if none is, the new
// function is refused with ErrFull rather than evicting a live history.
// Safe for concurrent use.
type Store struct {
	length, max int
	// now is the clock that says which minutes are too old to store (nil:
	// none is).
	now    func() time.Time
	mu     sync.RWMutex
	series map[string]*ring
	// sweptAt is the minute of the last sweep for silent functions, and
	// sweeps how many there were.
	sweptAt int64
	sweeps  int
}

// ring is one function's counts: counts[minute % length] for the minutes
// newest-length+1..newest; minutes before first were never observed.
type ring struct {
	mu            sync.Mutex
	counts        slots
	newest, first int64
}

// New makes a store of length-minute histories for at most maxFunctions
// functions.
func New(length, maxFunctions int) *Store {
	return &Store{length: length, max: maxFunctions, series: map[string]*ring{}}
}

// WithClock makes the store count as stale every minute older than the
// window that ends at now's minute, instead of storing it: for a function it has not
// seen, one such minute would start its history a day or a year back and
// invent silent minutes since.
func (s *Store) WithClock(now func() time.Time) *Store {
	s.now = now
	return s
}

// Length is the most minutes a history holds.
func (s *Store) Length() int { return s.length }

// Len is the number of functions held.
func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.series)
}

// check validates one observation.
func check(o Observation) error {
	switch {
	case funcid.Validate(o.ID) != nil:
		return fmt.Errorf("%w: %w", ErrInvalid, funcid.Validate(o.ID))
	case trace.CheckCount(o.Count) != nil:
		return fmt.Errorf("%w: function %s minute %d: %w", ErrInvalid, funcid.Short(o.ID), o.Minute, trace.CheckCount(o.Count))
	case o.Minute <= 0:
		return fmt.Errorf("%w: function %s: minute %d, want a positive Unix minute", ErrInvalid, funcid.Short(o.ID), o.Minute)
	}
	return nil
}

// Observe sets the count of each observation's minute. Minutes newer than
// a function's newest move its window on (minutes skipped in between count
// as 0: no invocation reported); older minutes inside the window overwrite
// their slot; minutes older than the window are dropped and counted in
// stale. An invalid observation anywhere refuses the whole batch before
// anything is stored; at the function limit it stops at the first new
// function refused and returns how many it stored before.
func (s *Store) Observe(obs []Observation) (stored, stale int, err error) {
	for i, o := range obs {
		if err := check(o); err != nil {
			return 0, 0, fmt.Errorf("observation %d: %w", i, err)
		}
	}
	oldest := int64(math.MinInt64)
	if s.now != nil {
		// Window(id, current) starts at current - length.
		oldest = s.now().Unix()/60 - int64(s.length) - 1
	}
	for _, o := range obs {
		if o.Minute <= oldest {
			stale++
			continue
		}
		r, err := s.ring(o.ID, o.Minute)
		if err != nil {
			return stored, stale, err
		}
		if r.set(o.Minute, float32(o.Count), s.length) {
			stored++
		} else {
			stale++
		}
	}
	return stored, stale, nil
}

func (s *Store) ring(id string, minute int64) (*ring, error) {
	s.mu.RLock()
	r, ok := s.series[id]
	s.mu.RUnlock()
	if ok {
		return r, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.series[id]; ok {
		return r, nil
	}
	if len(s.series) >= s.max && minute > s.sweptAt {
		// One sweep per minute of data at most: a flood of new ids at the
		// limit must not scan every ring under the lock for each (23 ms
		// each at 100,000 functions).
		s.sweptAt = minute
		s.sweeps++
		s.dropSilent(minute)
	}
	if len(s.series) >= s.max {
		return nil, fmt.Errorf("%w: %d functions held, none silent for a day, none added (history.max_functions)", ErrFull, len(s.series))
	}
	r = &ring{counts: newSlots(s.length)}
	s.series[id] = r
	return r, nil
}

// dropSilent forgets the functions whose newest observation is a whole
// window older than minute. s.mu is held.
func (s *Store) dropSilent(minute int64) {
	for id, r := range s.series {
		r.mu.Lock()
		silent := r.newest <= minute-int64(s.length)
		r.mu.Unlock()
		if silent {
			delete(s.series, id)
		}
	}
}

// set stores one minute; false when it is older than the window.
func (r *ring) set(minute int64, v float32, length int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := int64(length)
	switch {
	case r.newest == 0: // first observation
		r.newest, r.first = minute, minute
	case minute > r.newest:
		// zero the slots of the minutes skipped (all, after a long silence)
		for t := r.newest + 1; t < minute && t <= r.newest+n; t++ {
			r.counts.set(int(t%n), 0)
		}
		r.newest = minute
		r.first = max(r.first, minute-n+1)
	case minute <= r.newest-n:
		return false
	default:
		r.first = min(r.first, minute)
	}
	r.counts.set(int(minute%n), v)
	return true
}

// Newest is the newest minute observed of a function (false: unknown).
func (s *Store) Newest(id string) (int64, bool) {
	s.mu.RLock()
	r, ok := s.series[id]
	s.mu.RUnlock()
	if !ok {
		return 0, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.newest, true
}

// IDs returns the functions the store holds, in no order.
func (s *Store) IDs() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]string, 0, len(s.series))
	for id := range s.series {
		out = append(out, id)
	}
	return out
}

// At is a function's count in one minute (a Unix minute), as Window
// gives it: 0 before its first observed minute and after its newest.
// ErrUnknown if the store has never seen the function. It reads one
// slot: KEDA's demand floor (the last minute's count) asks it per call.
func (s *Store) At(id string, minute int64) (float64, error) {
	s.mu.RLock()
	r, ok := s.series[id]
	s.mu.RUnlock()
	if !ok {
		return 0, fmt.Errorf("%w %s", ErrUnknown, funcid.Short(id))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if minute < r.first {
		return 0, nil
	}
	return r.count(minute, int64(s.length)), nil
}

// Window returns a function's counts for the minutes before end (a Unix
// minute, exclusive), oldest first: at most Length minutes, starting no
// earlier than its first observed minute. Minutes after its newest
// observation count as 0 (nothing was reported). ErrUnknown if the store
// has never seen the function.
func (s *Store) Window(id string, end int64) ([]float64, error) {
	return s.AppendWindow(nil, id, end)
}

// AppendWindow is Window appended to dst (the window is dst[len(dst):] of
// the answer), for callers that reuse one buffer for many functions: a
// minute's table reads every held function's day.
func (s *Store) AppendWindow(dst []float64, id string, end int64) ([]float64, error) {
	s.mu.RLock()
	r, ok := s.series[id]
	s.mu.RUnlock()
	if !ok {
		return dst, fmt.Errorf("%w %s", ErrUnknown, funcid.Short(id))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	n := int64(s.length)
	// first is never older than the ring's oldest minute, newest-n+1 (set
	// keeps it so).
	lo := max(r.first, end-n)
	if end <= lo {
		return dst, nil
	}
	at := len(dst)
	dst = slices.Grow(dst, int(end-lo))[:at+int(end-lo)]
	out := dst[at:]
	for t := lo; t < end; t++ {
		out[t-lo] = r.count(t, n)
	}
	return dst, nil
}

// count is the ring's count of minute, at least its first (never older
// than the ring's oldest minute: set keeps it so), 0 after its newest
// (nothing reported); r.mu is held.
func (r *ring) count(minute, length int64) float64 {
	if minute > r.newest {
		return 0
	}
	return float64(r.counts.get(int(minute % length)))
}
