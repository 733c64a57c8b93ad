package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mesp-project/mesp/config"
	"github.com/mesp-project/mesp/internal/fixture"
)

// TestMain lets a test run this binary as the mesp command itself (the
// test binary re-executed with MESP_TEST_MAIN set), so process-wide
// behaviour such as the runtime's telemetry is observed in a fresh process.
func TestMain(m *testing.M) {
	if args := os.Getenv("MESP_TEST_MAIN"); args != "" {
		os.Args = append([]string{"mesp"}, strings.Split(args, "\x1f")...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestServeLeavesNoTelemetry: a server run with a fresh HOME, past the
// 25 s in which the stock ONNX Runtime library starts its telemetry,
// creates no ~/.cache/Microsoft and no /tmp/mat-debug-<pid>.log.
func TestServeLeavesNoTelemetry(t *testing.T) {
	if testing.Short() {
		t.Skip("takes 30 s")
	}
	home := t.TempDir()
	lib := config.ORT{}.ORTLibrary() // resolved with the real HOME
	args := []string{"serve", "--models", fixture.Models(), "--addr", "127.0.0.1:0", "--ort-library", lib}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "HOME="+home, "XDG_CACHE_HOME=", "MESP_TEST_MAIN="+strings.Join(args, "\x1f"))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	listening := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		re := regexp.MustCompile(`listening on http://(\S+)`)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				listening <- m[1]
			}
		}
	}()
	select {
	case <-listening:
	case <-time.After(60 * time.Second):
		t.Fatal("mesp serve did not start")
	}
	time.Sleep(30 * time.Second)
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	var found []string
	filepath.Walk(home, func(p string, info os.FileInfo, err error) error {
		if err == nil && strings.Contains(p, "Microsoft") {
			found = append(found, p)
		}
		return nil
	})
	if _, err := os.Stat(fmt.Sprintf("/tmp/mat-debug-%d.log", cmd.Process.Pid)); err == nil {
		found = append(found, fmt.Sprintf("/tmp/mat-debug-%d.log", cmd.Process.Pid))
	}
	if len(found) > 0 {
		t.Fatalf("the runtime's telemetry left %v", found)
	}
}
