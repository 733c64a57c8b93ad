package main

import (
	"strings"
	"testing"

	"github.com/mesp-project/mesp/config"
)

// TestServedForecasterFollowsTheRouterSettings: each router switch the
// served set honours reaches the forecaster every command serves through
// (serve, eval, the choose-* commands): on by default, off by its key.
func TestServedForecasterFollowsTheRouterSettings(t *testing.T) {
	for _, key := range []string{"count_trees", "upper_share", "timers", "stop"} {
		t.Run(key, func(t *testing.T) {
			t.Setenv("MESP_ROUTER__"+strings.ToUpper(key), "false")
			cfg, err := config.Load("", nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			fc := servedForecaster(cfg, nil)
			skips := map[string]bool{"count_trees": fc.SkipTrees, "upper_share": fc.SkipUpper, "timers": fc.SkipTimers, "stop": fc.SkipStop}
			for k, skip := range skips {
				if skip != (k == key) {
					t.Errorf("router.%s false: %s skipped %v", key, k, skip)
				}
			}
		})
	}
	cfg, err := config.Load("", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if fc := servedForecaster(cfg, nil); fc.SkipTrees || fc.SkipUpper || fc.SkipTimers || fc.SkipStop {
		t.Fatalf("defaults skip something: %+v", fc)
	}
}
