package oodlog

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

func rec(fn string, i int) Record {
	counts := make([]float64, 1440)
	for j := range counts {
		counts[j] = float64((i + j) % 17)
	}
	return Record{Function: fn, Time: time.Unix(int64(i), 0).UTC(), Cluster: i % 8, Distance: 0.5, Counts: counts}
}

func TestConcurrentWritersGoroutinesAndProcesses(t *testing.T) {
	dir := t.TempDir()
	const procs, perProc, goroutines = 3, 40, 4
	// Other processes: this test binary re-run as a writer.
	var cmds []*exec.Cmd
	for p := range procs {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestHelperWriter$")
		cmd.Env = append(os.Environ(), "OODLOG_HELPER_DIR="+dir, "OODLOG_HELPER_ID=p"+strconv.Itoa(p), "OODLOG_HELPER_N="+strconv.Itoa(perProc))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	l, err := Open(dir, 1<<30, 4)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perProc {
				if err := l.Append(rec(fmt.Sprintf("g%d", g), i)); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	for _, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	recs, st, err := ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := (procs + goroutines) * perProc
	if len(recs) != want || st.Torn != 0 {
		t.Fatalf("%d records (%d torn), want %d intact", len(recs), st.Torn, want)
	}
	seen := map[string]bool{}
	for _, r := range recs {
		key := fmt.Sprint(r.Function, r.Time.Unix())
		if seen[key] || len(r.Counts) != 1440 {
			t.Fatalf("duplicate or damaged record %s", key)
		}
		seen[key] = true
	}
}

// TestHelperWriter is a writer process for the tests above (not a test on
// its own: it returns at once unless started by them).
func TestHelperWriter(t *testing.T) {
	dir := os.Getenv("OODLOG_HELPER_DIR")
	if dir == "" {
		return
	}
	n, _ := strconv.Atoi(os.Getenv("OODLOG_HELPER_N"))
	l, err := Open(dir, 1<<30, 4)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; n == 0 || i < n; i++ {
		if err := l.Append(rec(os.Getenv("OODLOG_HELPER_ID"), i)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestKilledWriterLeavesReadableLog(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run", "^TestHelperWriter$")
	cmd.Env = append(os.Environ(), "OODLOG_HELPER_DIR="+dir, "OODLOG_HELPER_ID=k", "OODLOG_HELPER_N=0")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Let it write for a while, then kill it without warning.
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := os.Stat(filepath.Join(dir, Name))
		if err == nil && st.Size() > 200_000 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("writer wrote nothing")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	// Simulate the worst case too: a torn half record at the end.
	line, _ := Encode(rec("torn", 1))
	f, _ := os.OpenFile(filepath.Join(dir, Name), os.O_WRONLY|os.O_APPEND, 0)
	f.Write(line[:len(line)/2])
	f.Close()
	recs, st, err := ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) == 0 || st.Torn != 1 {
		t.Fatalf("%d records, %d torn; want some records and exactly the one torn line", len(recs), st.Torn)
	}
	// Appending after the crash still works and the new record reads back.
	l, _ := Open(dir, 1<<30, 4)
	if err := l.Append(rec("after", 1)); err != nil {
		t.Fatal(err)
	}
	again, st2, _ := ReadDir(dir)
	if again[len(again)-1].Function != "after" || len(again) != len(recs)+1 || st2.Torn != 1 {
		t.Fatalf("record after the crash lost")
	}
}

func TestRotationKeepsTheBound(t *testing.T) {
	dir := t.TempDir()
	line, _ := Encode(rec("x", 0))
	maxBytes := int64(len(line) * 5)
	l, err := Open(dir, maxBytes, 3)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if err := l.Append(rec("x", i)); err != nil {
			t.Fatal(err)
		}
	}
	entries, _ := os.ReadDir(dir)
	var total int64
	files := 0
	for _, e := range entries {
		if e.Name() == ".lock" {
			continue
		}
		info, _ := e.Info()
		total += info.Size()
		files++
	}
	if files != 3 || total > 3*maxBytes {
		t.Fatalf("%d files, %d bytes; want 3 files within %d bytes", files, total, 3*maxBytes)
	}
	recs, _, _ := ReadDir(dir)
	// The newest records survive, in order.
	if recs[len(recs)-1].Time.Unix() != 99 || recs[0].Time.Unix() >= recs[len(recs)-1].Time.Unix() {
		t.Fatalf("order after rotation: first %v last %v", recs[0].Time.Unix(), recs[len(recs)-1].Time.Unix())
	}
}
