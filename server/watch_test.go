package server_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mesp-project/mesp/internal/fixture"
	"github.com/mesp-project/mesp/manifest"
	"github.com/mesp-project/mesp/server"
)

// generationOf copies the shipped models into dir with the prewarm
// threshold set to th: /v1/prewarm's default threshold tells the
// generations apart.
func generationOf(t *testing.T, dir string, th float64) {
	t.Helper()
	src := fixture.CopyModels(t)
	if err := os.Rename(src, dir); err != nil {
		t.Fatal(err)
	}
	m, err := manifest.ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	m.Prewarm.Threshold = th
	if err := manifest.Write(filepath.Join(dir, "manifest.json"), m); err != nil {
		t.Fatal(err)
	}
}

// switchLink points link at target atomically (a new link, then rename).
func switchLink(t *testing.T, target, link string) {
	t.Helper()
	tmp := link + ".tmp"
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, link); err != nil {
		t.Fatal(err)
	}
}

func servedThreshold(t *testing.T, ts *testServer, want float64) {
	t.Helper()
	body := `{"counts":` + mustJSON(fixture.Rows(t)[0].Counts[:600]) + `}`
	deadline := time.Now().Add(10 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		code, b := post(t, ts.URL+"/v1/prewarm", body)
		var resp server.PrewarmResponse
		if code == 200 && json.Unmarshal(b, &resp) == nil && resp.Threshold == want {
			return
		}
		last = string(b[:min(len(b), 200)])
		time.Sleep(50 * time.Millisecond)
	}
	_, experts := get(t, ts.URL+"/v1/experts")
	t.Fatalf("not serving threshold %v after the switch: %s; experts %s", want, last, experts[max(0, len(experts)-300):])
}

// TestWatchFollowsASymlinkSwitch: the models folder is a link switched
// from one set to the next, each old target deleted after the switch; the
// server reloads every time, also after its first target is gone.
func TestWatchFollowsASymlinkSwitch(t *testing.T) {
	root := t.TempDir()
	generationOf(t, filepath.Join(root, "gen1"), 0.011)
	link := filepath.Join(root, "current")
	switchLink(t, "gen1", link)
	ts := startOn(t, link)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := ts.srv.Watch(ctx, link, 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	for i, th := range []float64{0.012, 0.013} {
		next := filepath.Join(root, "gen"+string(rune('2'+i)))
		generationOf(t, next, th)
		prev, _ := filepath.EvalSymlinks(link)
		switchLink(t, filepath.Base(next), link)
		os.RemoveAll(prev)
		servedThreshold(t, ts, th)
	}
}

// TestWatchFollowsAConfigMapUpdate: Kubernetes mounts a ConfigMap as
// files linked through "..data" to a timestamped folder, and updates it
// by swapping "..data" and deleting the old folder.
func TestWatchFollowsAConfigMapUpdate(t *testing.T) {
	dir := t.TempDir()
	generationOf(t, filepath.Join(dir, "..2026_11_27_1"), 0.021)
	switchLink(t, "..2026_11_27_1", filepath.Join(dir, "..data"))
	entries, _ := os.ReadDir(filepath.Join(dir, "..data"))
	for _, e := range entries {
		if err := os.Symlink(filepath.Join("..data", e.Name()), filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	ts := startOn(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := ts.srv.Watch(ctx, dir, 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	generationOf(t, filepath.Join(dir, "..2026_11_27_2"), 0.022)
	switchLink(t, "..2026_11_27_2", filepath.Join(dir, "..data"))
	os.RemoveAll(filepath.Join(dir, "..2026_11_27_1"))
	servedThreshold(t, ts, 0.022)
}
