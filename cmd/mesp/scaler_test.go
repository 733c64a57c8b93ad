package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/mesp-project/mesp/internal/fixture"
	"github.com/mesp-project/mesp/scaler"
	"github.com/mesp-project/mesp/server"
	"github.com/mesp-project/mesp/trace"
)

// The predictive scaler end to end, with real parts: Debian's Prometheus
// holding a real day of per-minute counts of three fixture functions
// (backfilled with promtool from OpenMetrics), `mesp serve` reading them
// with its Prometheus reader and serving KEDA's external scaler protocol,
// and KEDA's own generated gRPC client asking. IsActive and GetMetrics
// equal what POST /v1/prewarm answers for the same history; a function
// Prometheus has no series for gets NotFound; a restarted server recovers
// the whole day from Prometheus.
func TestPredictiveScalerWithPrometheusAndKEDAClient(t *testing.T) {
	prom, promtool := findPrometheus(t)
	fns := fixture.Rows(t)[:3]
	end := time.Now().Unix() / 60 // the day ends just before the current minute
	promURL := startPrometheus(t, prom, promtool, fns, end-1440)

	dir := fixture.CopyModels(t)
	httpAddr, grpcAddr := freeAddr(t), freeAddr(t)
	var names []string
	for _, f := range fns {
		names = append(names, f.ID)
	}
	cfg := filepath.Join(t.TempDir(), "mesp.yaml")
	os.WriteFile(cfg, fmt.Appendf(nil, `models: %s
server: {addr: "%s", watch: false}
scaler: {grpc_addr: "%s"}
prometheus:
  url: %s
  # exact per-minute counts from a counter sampled at minute boundaries
  query: 'sum(fixture_invocations_total{function="$name"}) - sum(fixture_invocations_total{function="$name"} offset 1m)'
  functions: [%s, not-in-prometheus]
# KEDA's answers computed, compared with /v1/prewarm's for the same
# minute (the decision table's path: TestFleetReadWithOneGroupedQuery)
decide: {enabled: false}
log: {level: warn}
`, dir, httpAddr, grpcAddr, promURL, strings.Join(names, ", ")), 0o644)
	stop := startServe(t, cfg, httpAddr)

	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	keda := externalscaler.NewExternalScalerClient(conn)
	ctx := context.Background()
	for _, f := range fns {
		h := waitHistory(t, httpAddr, f.ID, f.Counts, end)
		ref := &externalscaler.ScaledObjectRef{Name: "fn", Namespace: "default",
			ScalerMetadata: map[string]string{scaler.KeyFunction: f.ID, scaler.KeyDemandMinutes: "15", scaler.KeyTarget: "100"}}
		for range 3 { // the decisions and the reference must see the same minute
			active, err := keda.IsActive(ctx, ref)
			if err != nil {
				t.Fatal(err)
			}
			// the default demand is the 0.9 quantile; "mean" the expected count
			next := &externalscaler.ScaledObjectRef{Name: "fn", Namespace: "default",
				ScalerMetadata: map[string]string{scaler.KeyFunction: f.ID, scaler.KeyDemandMinutes: "1", scaler.KeyQuantile: "mean"}}
			high := &externalscaler.ScaledObjectRef{Name: "fn", Namespace: "default",
				ScalerMetadata: map[string]string{scaler.KeyFunction: f.ID, scaler.KeyDemandMinutes: "15", scaler.KeyQuantile: "0.99"}}
			// floored: at least the last minute's count the history holds
			floored := &externalscaler.ScaledObjectRef{Name: "fn", Namespace: "default",
				ScalerMetadata: map[string]string{scaler.KeyFunction: f.ID, scaler.KeyDemandMinutes: "1", scaler.KeyFloor: scaler.FloorLastMinute}}
			var demands []float64
			for _, r := range []*externalscaler.ScaledObjectRef{ref, next, high, floored} {
				m, err := keda.GetMetrics(ctx, &externalscaler.GetMetricsRequest{ScaledObjectRef: r, MetricName: scaler.MetricName(f.ID)})
				if err != nil {
					t.Fatal(err)
				}
				demands = append(demands, m.MetricValues[0].MetricValueFloat)
			}
			pw := prewarm(t, httpAddr, f.ID, h.Counts, "p_invoke", "warm", "forecast", "q0.9", "q0.99")
			if again := getHistory(t, httpAddr, f.ID); !again.End.Equal(h.End) {
				h = again // a minute passed: ask again
				continue
			}
			want := []float64{float64(slices.Max(pw.Quantiles["q0.9"][:15])), float64(pw.Forecast[0]), float64(slices.Max(pw.Quantiles["q0.99"][:15])),
				max(float64(pw.Quantiles["q0.9"][0]), h.Counts[len(h.Counts)-1])}
			if want[2] < want[0] {
				t.Fatalf("%s: the 0.99 quantile's demand %v is under the 0.9's %v", f.ID, want[2], want[0])
			}
			t.Logf("%s: active %v (p_invoke %.4f, threshold %.4f), demand: q0.9 over 15 minutes, the mean of the next, q0.99 over 15, the next q0.9 floored at the last minute's %v: %v", f.ID, active.Result, pw.PInvoke[0], pw.Threshold, h.Counts[len(h.Counts)-1], want)
			// KEDA's answers may come from the minute's decision table, made in
			// a batch: ONNX Runtime may round a row of a batch differently
			// from the row alone, within float32's precision
			if active.Result != pw.Warm[0] || !slices.EqualFunc(demands, want, func(a, b float64) bool { return math.Abs(a-b) <= 1e-5*max(1, b) }) {
				t.Fatalf("%s: KEDA active %v demands %v; /v1/prewarm warm %v (p %.4f at %.4f) demands %v",
					f.ID, active.Result, demands, pw.Warm[0], pw.PInvoke[0], pw.Threshold, want)
			}
			// the ScaledObject's threshold decides around the same p_invoke
			for _, c := range []struct {
				th   float64
				want bool
			}{{float64(pw.PInvoke[0]) * 0.999, true}, {min(1, float64(pw.PInvoke[0])*1.001), false}} {
				r := &externalscaler.ScaledObjectRef{Name: "fn", ScalerMetadata: map[string]string{
					scaler.KeyFunction: f.ID, scaler.KeyThreshold: strconv.FormatFloat(c.th, 'g', -1, 64)}}
				got, err := keda.IsActive(ctx, r)
				if err != nil || got.Result != c.want {
					t.Fatalf("%s at threshold %v (p_invoke %v): active %v, %v", f.ID, c.th, pw.PInvoke[0], got.GetResult(), err)
				}
			}
			break
		}
		spec, err := keda.GetMetricSpec(ctx, ref)
		if err != nil || spec.MetricSpecs[0].TargetSizeFloat != 100 || spec.MetricSpecs[0].MetricName != scaler.MetricName(f.ID) {
			t.Fatalf("metric spec %v, %v", spec, err)
		}
	}
	missing := &externalscaler.ScaledObjectRef{Name: "x", ScalerMetadata: map[string]string{scaler.KeyFunction: "not-in-prometheus"}}
	if _, err := keda.IsActive(ctx, missing); status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), "no history") {
		t.Fatalf("a function Prometheus lacks: %v, want NotFound", err)
	}
	bad := &externalscaler.ScaledObjectRef{Name: "x", ScalerMetadata: map[string]string{scaler.KeyFunction: fns[0].ID, scaler.KeyThreshold: "2"}}
	if _, err := keda.GetMetrics(ctx, &externalscaler.GetMetricsRequest{ScaledObjectRef: bad}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("threshold 2: %v, want InvalidArgument", err)
	}
	stream, err := keda.StreamIsActive(ctx, &externalscaler.ScaledObjectRef{Name: "fn", ScalerMetadata: map[string]string{scaler.KeyFunction: fns[0].ID}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatalf("StreamIsActive's first answer: %v", err)
	}

	// A restart: a new process recovers the day from Prometheus.
	stop()
	startServe(t, cfg, httpAddr)
	for _, f := range fns {
		waitHistory(t, httpAddr, f.ID, f.Counts, end)
	}
}

// findPrometheus finds Debian's prometheus and promtool
// (scripts/ensure-prometheus.sh installs them for make test).
func findPrometheus(t *testing.T) (string, string) {
	prom, err1 := exec.LookPath("prometheus")
	tool, err2 := exec.LookPath("promtool")
	if err1 != nil || err2 != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("prometheus and promtool are not installed (make test runs scripts/ensure-prometheus.sh)")
		}
		t.Skip("prometheus not installed: run scripts/ensure-prometheus.sh")
	}
	return prom, tool
}

// startPrometheus backfills a counter of each function's invocations,
// sampled at every minute boundary from the start of minute first, and
// serves it on loopback.
func startPrometheus(t *testing.T, prom, promtool string, fns []trace.Function, first int64) string {
	t.Helper()
	series := make([]promSeries, len(fns))
	for i, f := range fns {
		series[i] = promSeries{f, first}
	}
	return startPrometheusSeries(t, prom, promtool, series)
}

// promSeries is one function's counter in Prometheus: its counts from the
// start of minute first on (a series that starts late appears mid-day; one
// shorter than the day leaves it).
type promSeries struct {
	trace.Function
	first int64
}

// startPrometheusSeries backfills each series' counter and serves them.
func startPrometheusSeries(t *testing.T, prom, promtool string, series []promSeries) string {
	t.Helper()
	dir := t.TempDir()
	var om bytes.Buffer
	om.WriteString("# TYPE fixture_invocations counter\n")
	for _, f := range series {
		total := 0.0
		fmt.Fprintf(&om, "fixture_invocations_total{function=%q} 0 %d\n", f.ID, f.first*60)
		for m, c := range f.Counts {
			total += c
			fmt.Fprintf(&om, "fixture_invocations_total{function=%q} %g %d\n", f.ID, total, (f.first+int64(m)+1)*60)
		}
	}
	om.WriteString("# EOF\n")
	omFile := filepath.Join(dir, "day.om")
	os.WriteFile(omFile, om.Bytes(), 0o644)
	if out, err := exec.Command(promtool, "tsdb", "create-blocks-from", "openmetrics", omFile, filepath.Join(dir, "data")).CombinedOutput(); err != nil {
		t.Fatalf("promtool: %v\n%s", err, out)
	}
	os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte("global:\n  scrape_interval: 1m\n"), 0o644)
	addr := freeAddr(t)
	cmd := exec.Command(prom, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--storage.tsdb.retention.time=30d")
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	url := "http://" + addr
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if resp, err := http.Get(url + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready:\n%s", log.String())
		}
	}
}

// startServe runs `mesp serve --config cfg` in this process until the
// returned stop (or the test's end).
func startServe(t *testing.T, cfg, httpAddr string) (stop func()) {
	t.Helper()
	return startServeOver(t, cfg, "http://"+httpAddr, http.DefaultClient)
}

// startServeOver is startServe for a server reached at base with client
// (an HTTPS one, with TLS).
func startServeOver(t *testing.T, cfg, base string, client *http.Client) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runServe(ctx, []string{"--config", cfg}) }()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if resp, err := client.Get(base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-done:
			cancel()
			t.Fatalf("mesp serve ended: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("mesp serve not ready")
		}
	}
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("mesp serve: %v", err)
			}
		}
	}
	t.Cleanup(stop)
	return stop
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func getHistory(t *testing.T, addr, id string) server.HistoryResponse {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/v1/history/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h server.HistoryResponse
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, &h); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

// waitHistory waits until MESP holds the function's day (want, which
// ended before minute dayEnd) as Prometheus has it: if minutes have passed
// since, the window has moved on and they count 0.
func waitHistory(t *testing.T, addr, id string, want []float64, dayEnd int64) server.HistoryResponse {
	t.Helper()
	// the day as Prometheus has it, as many minutes after it ended as
	// have passed; a backfill read in slices fills older minutes first,
	// so wait for the whole day, not for its length
	expect := func(h server.HistoryResponse) ([]float64, int) {
		passed := int(h.End.Unix()/60 - dayEnd)
		if passed < 0 || passed > 5 {
			return nil, passed
		}
		return append(slices.Clone(want[passed:]), make([]float64, passed)...), passed
	}
	var h server.HistoryResponse
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		h = getHistory(t, addr, id)
		if e, _ := expect(h); e != nil && slices.Equal(h.Counts, e) {
			return h
		}
	}
	_, passed := expect(h)
	t.Fatalf("%s: MESP holds %d minutes ending %v, not the day in Prometheus (%d minutes since it ended at minute %d)", id, len(h.Counts), h.End, passed, dayEnd)
	return h
}

func prewarm(t *testing.T, addr, id string, counts []float64, outputs ...string) server.PrewarmJSON {
	t.Helper()
	body, _ := json.Marshal(server.ForecastRequest{Functions: []server.FunctionCounts{{ID: id, Counts: counts}}, Outputs: outputs})
	resp, err := http.Post("http://"+addr+"/v1/prewarm", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out server.PrewarmResponse
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &out) != nil || len(out.Functions) != 1 {
		t.Fatalf("prewarm: %d %s", resp.StatusCode, b)
	}
	return out.Functions[0]
}

// TestFleetReadWithOneGroupedQuery: with a query grouped by the function
// label (no $name, no list of functions), the real Prometheus is read in
// a few queries a day, every function it holds is discovered, and each
// one's history is the day Prometheus has, across slice boundaries.
func TestFleetReadWithOneGroupedQuery(t *testing.T) {
	prom, promtool := findPrometheus(t)
	rows := fixture.Rows(t)
	fns := rows[:5]
	end := time.Now().Unix() / 60
	series := make([]promSeries, 0, len(fns)+2)
	for _, f := range fns {
		series = append(series, promSeries{f, end - 1440})
	}
	// one function appears 5 hours before now, one left Prometheus 10
	// hours ago: the first is decided, the second is not
	appeared := trace.Function{ID: "appeared", Counts: rows[5].Counts[1140:]}
	gone := trace.Function{ID: "gone", Counts: rows[6].Counts[:840]}
	series = append(series, promSeries{appeared, end - 300}, promSeries{gone, end - 1440})
	promURL := startPrometheusSeries(t, prom, promtool, series)
	httpAddr := freeAddr(t)
	cfg := filepath.Join(t.TempDir(), "mesp.yaml")
	os.WriteFile(cfg, fmt.Appendf(nil, `models: %s
server: {addr: "%s", watch: false}
prometheus:
  url: %s
  query: 'sum by (function) (fixture_invocations_total) - sum by (function) (fixture_invocations_total offset 1m)'
  slice: 3h
decide: {deadline: 1s}
log: {level: warn}
`, fixture.CopyModels(t), httpAddr, promURL), 0o644)
	startServe(t, cfg, httpAddr)
	for _, f := range fns {
		waitHistory(t, httpAddr, f.ID, f.Counts, end)
	}
	// the decision table: every function, what /v1/prewarm answers for
	// the same day (read when the table's minute is the current one)
	for try := 0; ; try++ {
		resp, err := http.Get("http://" + httpAddr + "/v1/decisions?minutes=60")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		minute, _ := time.Parse(time.RFC3339, resp.Header.Get("X-Decisions-Minute"))
		var lines []server.DecisionJSON
		for _, l := range bytes.Split(bytes.TrimSpace(body), []byte("\n")) {
			var d server.DecisionJSON
			if json.Unmarshal(l, &d) == nil {
				lines = append(lines, d)
			}
		}
		h := getHistory(t, httpAddr, fns[0].ID)
		ids := make([]string, len(lines))
		for i, d := range lines {
			ids[i] = d.ID
		}
		if resp.StatusCode != http.StatusOK || !h.End.Equal(minute) || len(lines) != len(fns)+1 || !slices.Contains(ids, appeared.ID) {
			if try > 100 {
				t.Fatalf("no table for the current minute with the functions Prometheus has now: %d, table minute %v, history end %v, %v", resp.StatusCode, minute, h.End, ids)
			}
			time.Sleep(200 * time.Millisecond)
			continue
		}
		for _, d := range lines {
			pw := prewarm(t, httpAddr, d.ID, getHistory(t, httpAddr, d.ID).Counts)
			for h := range 60 {
				if math.Abs(float64(d.PInvoke[h]-pw.PInvoke[h])) > 1e-5 || math.Abs(float64(d.Forecast[h]-pw.Forecast[h])) > 1e-5*max(1, float64(pw.Forecast[h])) {
					t.Fatalf("%s minute %d: the table has p %v forecast %v, /v1/prewarm %v %v", d.ID, h+1, d.PInvoke[h], d.Forecast[h], pw.PInvoke[h], pw.Forecast[h])
				}
			}
		}
		break
	}
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var n float64
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, `mesp_promread_queries_total{result="ok"} `); ok {
			n, _ = strconv.ParseFloat(v, 64)
		}
	}
	// the function that left is held (its history up to then) but not
	// decided, and counted
	if !strings.Contains(string(body), "\nmesp_decisions_stale_functions 1\n") {
		t.Errorf("the function that left Prometheus is not counted as stale:\n%s", grepLines(string(body), "mesp_decisions"))
	}
	// the decided functions ran the dense p_invoke graph, and /metrics
	// says how many rows and how long
	var denseRows, denseSeconds float64
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, `mesp_model_rows_total{model="dense-p"} `); ok {
			denseRows, _ = strconv.ParseFloat(v, 64)
		}
		if v, ok := strings.CutPrefix(line, `mesp_model_run_seconds_total{model="dense-p"} `); ok {
			denseSeconds, _ = strconv.ParseFloat(v, 64)
		}
	}
	if denseRows < 1 || !(denseSeconds > 0) {
		t.Errorf("the dense p_invoke graph's runs on /metrics: %v rows, %v seconds, want some of each:\n%s", denseRows, denseSeconds, grepLines(string(body), "mesp_model_"))
	}
	if h := getHistory(t, httpAddr, gone.ID); len(h.Counts) == 0 {
		t.Errorf("the function that left has no history: %+v", h)
	}
	// 8 slices of 3 hours for the day, whatever the number of functions
	// (and a refresh or two while the test ran)
	if n < 8 || n > 12 {
		t.Fatalf("%v successful queries for %d functions, want the day's 8 slices and at most a few refreshes", n, len(fns))
	}
}

// grepLines is text's lines that contain sub.
func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
