package oodlog

import (
	"sync"
	"time"
)

// Recent remembers when each function's pattern was last logged, so that
// a function seen every minute (the decision table decides every held
// function each minute) is logged once an Every, not once a minute: a
// flood of one function's shifting day would crowd out the other
// patterns the log keeps for `mesp cluster add`. Safe for concurrent use.
type Recent struct {
	Every time.Duration
	mu    sync.Mutex
	last  map[string]time.Time
	// pruneAt is the size at which entries older than Every are dropped,
	// so that the map holds about the functions logged within Every.
	pruneAt int
}

// Due says whether function's pattern is to be logged at now (none
// logged within Every before), and if so takes now as its last.
func (r *Recent) Due(function string, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if last, ok := r.last[function]; ok && now.Sub(last) < r.Every {
		return false
	}
	if r.last == nil {
		r.last = map[string]time.Time{}
	}
	if len(r.last) >= r.pruneAt {
		for f, t := range r.last {
			if now.Sub(t) >= r.Every {
				delete(r.last, f)
			}
		}
		r.pruneAt = max(1024, 2*len(r.last))
	}
	r.last[function] = now
	return true
}
