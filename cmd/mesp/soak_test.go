package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/mesp-project/mesp/internal/fixture"
	"github.com/mesp-project/mesp/soak"
)

// TestShortSoak runs `mesp soak` (the binary make test builds) for 15
// seconds: under oversized, slow and empty-object bodies, megabyte ids,
// tokenless pushes, a StreamIsActive flood past the cap, a hostile
// Prometheus and hot reloads, no legitimate request fails except with 503
// and Retry-After, the flood is refused past 1,000 streams (and sooner
// where its first decisions meet the in-flight budget) and RSS stays
// within the budget. `make soak` runs the full two minutes.
func TestShortSoak(t *testing.T) {
	bin, err := filepath.Abs(filepath.Join("..", "..", "bin", "mesp"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s missing: make test builds it", bin)
		}
		t.Skip("bin/mesp not built: run make build")
	}
	out := filepath.Join(t.TempDir(), "soak.json")
	cmd := exec.Command(bin, "soak", "--data", fixture.Sample100, "--models", filepath.Join("..", "..", "models"),
		"--duration", "15s", "--reloads", "5", "--streams", "1500", "--slow-bodies", "50", "--rss-budget-mb", "1536", "--out", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mesp soak: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rep soak.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	flood := rep.Hostile["StreamIsActive flood"]
	if rep.LegitFailed != 0 || rep.LegitRequests < 100 || flood["grpc:ResourceExhausted"] < 500 || flood["grpc:OK"]+flood["grpc:ResourceExhausted"] != 1500 ||
		rep.Reloads["200"] < 2 || rep.PeakRSSMB > 1536 || rep.PeakRSSMB == 0 {
		t.Fatalf("report: %s", b)
	}
	for kind, want := range map[string]string{"1 MiB id": "400", "40 MiB body": "413", "8 MiB of {}": "400", "push without the token": "401"} {
		if rep.Hostile[kind][want] == 0 {
			t.Errorf("%s: %v, want %s answers", kind, rep.Hostile[kind], want)
		}
	}
}
