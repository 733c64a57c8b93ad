// Package shard splits a fleet among N replicas: each function belongs to
// exactly one, chosen by rendezvous (highest-random-weight) hashing of its
// id, so that every replica, caller and platform client that knows N
// computes the same owner with no coordination, and going from N to N+1
// replicas moves only the functions the new replica wins (about 1/(N+1)),
// not most of the fleet as id mod N would.
package shard

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// Owner is the replica (0..replicas-1) that owns function. A platform's
// client that sends each function's calls to its replica uses this very
// function (or the same rule: the replica r with the largest first 8 bytes,
// big-endian, of sha256(id + "\x00" + decimal r)).
func Owner(function string, replicas int) int {
	best, bestScore := 0, uint64(0)
	buf := make([]byte, 0, len(function)+8)
	for r := range replicas {
		buf = append(append(buf[:0], function...), 0)
		buf = fmt.Appendf(buf, "%d", r)
		h := sha256.Sum256(buf)
		if s := binary.BigEndian.Uint64(h[:8]); r == 0 || s > bestScore {
			best, bestScore = r, s
		}
	}
	return best
}

// Shard is one replica's place in the fleet; the zero value (or Replicas
// of 1) owns every function.
type Shard struct {
	Index, Replicas int
}

// Owns reports whether this replica owns function.
func (s Shard) Owns(function string) bool {
	return s.Replicas <= 1 || Owner(function, s.Replicas) == s.Index
}

// Validate checks the index against the replica count.
func (s Shard) Validate() error {
	if s.Replicas < 0 || s.Replicas > 0 && (s.Index < 0 || s.Index >= s.Replicas) {
		return fmt.Errorf("shard: index %d of %d replicas, want 0..replicas-1", s.Index, s.Replicas)
	}
	return nil
}

// NotOwned says which replica owns a function this one does not.
type NotOwned struct {
	Function    string
	Owner, Self int
}

func (e *NotOwned) Error() string {
	return fmt.Sprintf("function %.64q belongs to replica %d, this is replica %d", e.Function, e.Owner, e.Self)
}

// Check is nil when this replica owns function, else a *NotOwned naming the
// owner.
func (s Shard) Check(function string) error {
	if s.Owns(function) {
		return nil
	}
	return &NotOwned{Function: function, Owner: Owner(function, s.Replicas), Self: s.Index}
}
