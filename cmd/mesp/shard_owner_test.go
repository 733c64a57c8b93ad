package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/mesp-project/mesp/shard"
)

func TestShardOwnerPrintsEachFunctionsReplica(t *testing.T) {
	ids := make([]string, 300)
	for i := range ids {
		ids[i] = fmt.Sprintf("fn-%03d", i)
	}
	var want strings.Builder
	seen := map[int]int{}
	for _, id := range ids {
		r := shard.Owner(id, 3)
		seen[r]++
		fmt.Fprintf(&want, "%s %d\n", id, r)
	}
	if len(seen) != 3 {
		t.Fatalf("300 ids over 3 replicas landed on %v", seen)
	}
	cases := []struct {
		name string
		args []string
		in   string
	}{
		{"ids as arguments", ids, ""},
		{"one per line on stdin, blank lines and spaces skipped", nil, "\n  " + strings.Join(ids, "\n") + "  \n\n"},
	}
	for _, tc := range cases {
		var out bytes.Buffer
		if err := shardOwners(tc.args, strings.NewReader(tc.in), &out, 3); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if out.String() != want.String() {
			t.Fatalf("%s: got\n%.200s\nwant\n%.200s", tc.name, out.String(), want.String())
		}
	}
	var out bytes.Buffer
	if err := shardOwners(nil, strings.NewReader("ok\nbad\x01id\n"), &out, 3); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("a control character on line 2: %v", err)
	}
	if err := runShardOwner(context.Background(), []string{"--replicas", "0", "x"}); err == nil {
		t.Fatal("--replicas 0 accepted")
	}
}
