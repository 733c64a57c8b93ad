package main

import (
	"math"
	"runtime/debug"
	"testing"

	"github.com/mesp-project/mesp/config"
)

// TestGoMemoryLimitFromConfig: server.go_memory_limit_bytes becomes the Go
// runtime's soft limit; 0 leaves Go's own in place.
func TestGoMemoryLimitFromConfig(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	debug.SetMemoryLimit(math.MaxInt64)
	cases := []struct {
		name    string
		setting int64
		want    int64
		set     bool
	}{
		{"unset keeps Go's own", 0, math.MaxInt64, false},
		{"750 MiB", 750 << 20, 750 << 20, true},
		{"unset after a limit keeps that limit", 0, 750 << 20, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			limit, set := applyGoMemoryLimit(config.Server{GoMemoryLimitBytes: tc.setting})
			if got := debug.SetMemoryLimit(-1); got != tc.want || limit != tc.want || set != tc.set {
				t.Fatalf("runtime limit %d, returned %d (set %v); want %d (set %v)", got, limit, set, tc.want, tc.set)
			}
		})
	}
}
