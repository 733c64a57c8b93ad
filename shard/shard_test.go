package shard

import (
	"errors"
	"fmt"
	"testing"
)

// TestReplicasSplitTheFleet: three replicas split 30,000 functions with
// none owned twice or never, about a third each; a fourth replica takes
// about a quarter, and only from the others (nothing moves between the
// first three).
func TestReplicasSplitTheFleet(t *testing.T) {
	const n, replicas = 30000, 3
	shards := make([]Shard, replicas)
	for i := range shards {
		shards[i] = Shard{Index: i, Replicas: replicas}
	}
	per := make([]int, replicas)
	moved, between := 0, 0
	for i := range n {
		id := fmt.Sprintf("ns-%d/fn-%d", i%37, i)
		owners := 0
		for r, s := range shards {
			if s.Owns(id) {
				owners++
				per[r]++
			}
		}
		if owners != 1 {
			t.Fatalf("%s owned by %d replicas", id, owners)
		}
		before, after := Owner(id, replicas), Owner(id, replicas+1)
		if before != after {
			moved++
			if after != replicas {
				between++
			}
		}
	}
	for r, c := range per {
		if c < n/replicas*95/100 || c > n/replicas*105/100 {
			t.Errorf("replica %d owns %d of %d", r, c, n)
		}
	}
	if between != 0 || moved < n/4*90/100 || moved > n/4*110/100 {
		t.Fatalf("a fourth replica moved %d functions (%d between the first three); want about %d, none between", moved, between, n/4)
	}
}

func TestCheckNamesTheOwner(t *testing.T) {
	s := Shard{Index: 0, Replicas: 3}
	for i := 0; ; i++ {
		id := fmt.Sprintf("f%d", i)
		if o := Owner(id, 3); o != 0 {
			var no *NotOwned
			if err := s.Check(id); !errors.As(err, &no) || no.Owner != o || no.Self != 0 {
				t.Fatalf("%s: %v", id, err)
			}
			break
		}
	}
	if (Shard{}).Check("anything") != nil || !(Shard{Replicas: 1}).Owns("x") {
		t.Fatal("a single replica does not own every function")
	}
	for _, bad := range []Shard{{Index: 3, Replicas: 3}, {Index: -1, Replicas: 2}, {Replicas: -1}} {
		if bad.Validate() == nil {
			t.Errorf("%+v passed", bad)
		}
	}
}
