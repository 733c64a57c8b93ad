package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mesp-project/mesp/internal/fixture"
)

// TestPushedHistorySurvivesARestart: with history.snapshot, a day pushed
// to one `mesp serve` is held whole by the next after a clean stop (it
// was lost at every restart: KEDA got NotFound, then FailedPrecondition
// for two hours); a corrupt snapshot is set aside with a clear error and
// the server still starts.
func TestPushedHistorySurvivesARestart(t *testing.T) {
	dir := t.TempDir()
	snap := filepath.Join(dir, "history.snap")
	httpAddr := freeAddr(t)
	cfg := filepath.Join(dir, "mesp.yaml")
	os.WriteFile(cfg, fmt.Appendf(nil, "models: %s\nserver: {addr: %q, watch: false}\nhistory: {snapshot: %s, snapshot_every: 1h}\nlog: {level: warn}\n",
		fixture.CopyModels(t), httpAddr, snap), 0o644)
	f := fixture.Rows(t)[1]
	end := time.Now().Unix() / 60
	var obs []string
	for m, c := range f.Counts {
		obs = append(obs, fmt.Sprintf(`{"id":%q,"minute":%q,"count":%g}`, f.ID, time.Unix((end-1440+int64(m))*60, 0).UTC().Format(time.RFC3339), c))
	}
	stop := startServe(t, cfg, httpAddr)
	resp, err := http.Post("http://"+httpAddr+"/v1/observe", "application/json", strings.NewReader(`{"observations":[`+strings.Join(obs, ",")+`]}`))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("push: %v %v", resp, err)
	}
	before := getHistory(t, httpAddr, f.ID)
	stop()

	stop = startServe(t, cfg, httpAddr)
	after := getHistory(t, httpAddr, f.ID)
	if len(before.Counts) != 1440 || !after.End.Equal(before.End) && after.End.Sub(before.End) > 2*time.Minute {
		t.Fatalf("before %d minutes to %v, after %d to %v", len(before.Counts), before.End, len(after.Counts), after.End)
	}
	shift := int(after.End.Sub(before.End) / time.Minute) // minutes that passed between the two reads
	if !slices.Equal(after.Counts[:1440-shift], before.Counts[shift:]) {
		t.Fatal("the restarted server holds another history")
	}
	stop()

	good, _ := os.ReadFile(snap)
	os.WriteFile(snap, good[:len(good)/2], 0o644)
	startServe(t, cfg, httpAddr)
	if h := getHistory(t, httpAddr, f.ID); len(h.Counts) != 0 {
		t.Fatalf("a truncated snapshot was loaded: %d minutes", len(h.Counts))
	}
	aside, _ := filepath.Glob(snap + ".bad-*")
	if len(aside) != 1 {
		t.Fatalf("the truncated snapshot was not set aside: %v", aside)
	}
}
