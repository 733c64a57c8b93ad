package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/mesp-project/mesp/soak"
	"github.com/mesp-project/mesp/trace"
)

func init() {
	register("soak", "run `mesp serve` under a mixed hostile load with hot reloads and a hostile Prometheus; report failures, peak RSS and goroutines", runSoak)
}

// runSoak starts a hostile Prometheus and `mesp serve` (this binary, as a
// child process, so that its RSS is its own), soaks it, and fails when a
// legitimate request failed or the peak RSS passed the budget.
func runSoak(ctx context.Context, args []string) error {
	fs := pflag.NewFlagSet("soak", pflag.ContinueOnError)
	data := fs.String("data", "", "Azure-layout CSV(.gz) whose days the legitimate clients send")
	models := fs.String("models", "models", "models folder (copied: reloads read the copy)")
	dur := fs.Duration("duration", 2*time.Minute, "how long")
	reloads := fs.Int("reloads", 50, "hot reloads over the run")
	streams := fs.Int("streams", 3000, "StreamIsActive streams in the flood (the server holds at most 1000)")
	slow := fs.Int("slow-bodies", 200, "connections trickling a body at any time")
	budget := fs.Float64("rss-budget-mb", 1536, "the server's RSS must stay below this")
	out := fs.String("out", "", "write the report as JSON here")
	if err := fs.Parse(args); err != nil {
		return err
	}
	days, err := trace.ReadAll(*data, trace.Options{}, trace.All)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "mesp-soak-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if err := os.CopyFS(filepath.Join(work, "models"), os.DirFS(*models)); err != nil {
		return fmt.Errorf("copying %s: %w", *models, err)
	}

	stopProm := make(chan struct{})
	promLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	prom := &http.Server{Handler: soak.Prometheus(stopProm)}
	go prom.Serve(promLn)
	defer func() { close(stopProm); prom.Close() }()

	grpcAddr, err := freePort()
	if err != nil {
		return err
	}
	cfg := filepath.Join(work, "mesp.yaml")
	os.WriteFile(cfg, fmt.Appendf(nil, `models: %s
server: {addr: "127.0.0.1:0", watch: false, admin_token: soak-admin, write_token: soak-writer}
scaler: {grpc_addr: %q}
prometheus:
  url: http://%s
  query: 'x{function="$name"}'
  functions: [%s]
  timeout: 5s
log: {level: warn}
`, filepath.Join(work, "models"), grpcAddr, promLn.Addr(), strings.Join(soak.PrometheusFunctions, ", ")), 0o644)
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, self, "serve", "--config", cfg)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	addr, err := listeningOn(stderr, 3*time.Minute)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "soak: mesp serve (pid %d) on %s, scaler %s, for %s\n", cmd.Process.Pid, addr, grpcAddr, *dur)
	rep, err := soak.Run(ctx, soak.Options{HTTP: "http://" + addr, GRPC: grpcAddr, WriteToken: "soak-writer", AdminToken: "soak-admin",
		PID: cmd.Process.Pid, Days: days, Duration: *dur, Reloads: *reloads, Streams: *streams, SlowBodies: *slow, Progress: os.Stderr})
	if err != nil {
		return err
	}
	printSoak(rep, *budget)
	if *out != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	switch {
	case rep.LegitFailed > 0:
		return fmt.Errorf("soak: %d legitimate requests failed other than with 503 + Retry-After: %v", rep.LegitFailed, rep.Failures)
	case rep.PeakRSSMB > *budget:
		return fmt.Errorf("soak: peak RSS %.0f MB over the budget of %.0f MB", rep.PeakRSSMB, *budget)
	}
	return nil
}

func printSoak(rep soak.Report, budget float64) {
	fmt.Printf("soak: %.0f s, %d legitimate requests (%d failed), %d hostile, reloads %v\n", rep.DurationS, rep.LegitRequests, rep.LegitFailed, rep.HostileRequests, rep.Reloads)
	fmt.Printf("server RSS: %.0f MB at start, peak %.0f MB (budget %.0f), %.0f MB at the end; peak goroutines %d\n", rep.StartRSSMB, rep.PeakRSSMB, budget, rep.EndRSSMB, rep.PeakGoroutines)
	for _, group := range []struct {
		name string
		m    map[string]soak.Outcomes
	}{{"legitimate", rep.Legit}, {"hostile", rep.Hostile}} {
		kinds := make([]string, 0, len(group.m))
		for k := range group.m {
			kinds = append(kinds, k)
		}
		sort.Strings(kinds)
		for _, k := range kinds {
			lat := ""
			if l, ok := rep.Latency[k]; ok {
				lat = fmt.Sprintf("  p50 %.3f s, p99 %.3f s, max %.3f s", l[0], l[1], l[2])
			}
			fmt.Printf("  %-10s %-42s %v%s\n", group.name, k, group.m[k], lat)
		}
	}
}

var listening = regexp.MustCompile(`listening on https?://(\S+)`)

// listeningOn reads a server's stderr until its "listening on" line; the
// rest is passed on to this process's stderr.
func listeningOn(stderr interface{ Read([]byte) (int, error) }, wait time.Duration) (string, error) {
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			if m := listening.FindStringSubmatch(sc.Text()); m != nil && !sent {
				found <- m[1]
				sent = true
				continue
			}
			fmt.Fprintln(os.Stderr, sc.Text())
		}
	}()
	select {
	case a := <-found:
		return a, nil
	case <-time.After(wait):
		return "", fmt.Errorf("mesp serve did not start within %s", wait)
	}
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
