package publish

import (
	"os"
	"path/filepath"
	"testing"
)

func write(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	os.MkdirAll(dir, 0o755)
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func names(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		out[e.Name()] = string(b)
	}
	return out
}

// TestCommitReplacesTheWholeSet: a set with other files (another K's
// Parquet files) is replaced entirely, nothing of the old one stays, and
// no staging folder is left beside it.
func TestCommitReplacesTheWholeSet(t *testing.T) {
	root := t.TempDir()
	dst := filepath.Join(root, "models")
	write(t, dst, map[string]string{"clusters.json": "old", "cluster-0.parquet": "a", "cluster-9.parquet": "stale"})
	stage, err := Stage(dst)
	if err != nil {
		t.Fatal(err)
	}
	write(t, stage, map[string]string{"clusters.json": "new", "cluster-0.parquet": "b"})
	if err := Commit(stage, dst); err != nil {
		t.Fatal(err)
	}
	got := names(t, dst)
	if len(got) != 2 || got["clusters.json"] != "new" || got["cluster-0.parquet"] != "b" {
		t.Fatalf("published %v", got)
	}
	entries, _ := os.ReadDir(root)
	if len(entries) != 1 {
		t.Fatalf("left beside it: %v", entries)
	}
	// A first publication creates the folder.
	fresh := filepath.Join(root, "sub", "fresh")
	stage, _ = Stage(fresh)
	write(t, stage, map[string]string{"x": "1"})
	if err := Commit(stage, fresh); err != nil || names(t, fresh)["x"] != "1" {
		t.Fatalf("new folder: %v %v", names(t, fresh), err)
	}
}

// TestAbortLeavesTheOldSet: a run that fails (or is killed) before Commit
// leaves the published set untouched.
func TestAbortLeavesTheOldSet(t *testing.T) {
	root := t.TempDir()
	dst := filepath.Join(root, "models")
	write(t, dst, map[string]string{"clusters.json": "old"})
	stage, _ := Stage(dst)
	write(t, stage, map[string]string{"clusters.json": "half", "cluster-0.parquet.tmp": ""})
	Abort(stage)
	if got := names(t, dst); len(got) != 1 || got["clusters.json"] != "old" {
		t.Fatalf("after abort: %v", got)
	}
	if entries, _ := os.ReadDir(root); len(entries) != 1 {
		t.Fatalf("staging folder left: %v", entries)
	}
}

func TestCopyFilesSkipsHiddenAndFolders(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	write(t, src, map[string]string{"a.onnx": "1", ".tmp-x": "2"})
	os.MkdirAll(filepath.Join(src, ".work"), 0o755)
	if err := CopyFiles(src, dst); err != nil {
		t.Fatal(err)
	}
	if got := names(t, dst); len(got) != 1 || got["a.onnx"] != "1" {
		t.Fatalf("copied %v", got)
	}
}
