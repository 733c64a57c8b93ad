// Package soak runs MESP under a mixed hostile load, as an outside client
// population would: legitimate forecasts, pre-warm decisions, pushes, KServe
// V2 calls and KEDA's calls, beside oversized and slow bodies, long ids,
// floods of empty objects, tokenless pushes and a StreamIsActive flood,
// while the models are reloaded again and again and the server reads a
// hung, dripping and lying Prometheus (Prometheus). It reports every
// outcome, the server's peak RSS and goroutines, and each legitimate
// request that failed other than with 503 and Retry-After (`make soak`).
package soak

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/mesp-project/mesp/trace"
)

// Options of one soak.
type Options struct {
	HTTP       string // the server's base URL
	GRPC       string // the scaler's address
	WriteToken string
	AdminToken string
	PID        int // the server's process, for its RSS
	// Days are real functions' days for the legitimate requests.
	Days []trace.Function
	// Duration is how long the load runs; it runs on (up to twice as
	// long) until all Reloads hot reloads are done.
	Duration time.Duration
	Reloads  int
	// Streams is the size of the StreamIsActive flood, SlowBodies the
	// connections trickling bodies at any time.
	Streams    int
	SlowBodies int
	// Progress, when set, gets a line every few seconds.
	Progress io.Writer
}

// Outcomes counts what one kind of request got: "200", "503+retry",
// "413", "grpc:OK", "error: ..." and so on.
type Outcomes map[string]int

// Report is a soak's result.
type Report struct {
	DurationS float64             `json:"duration_s"`
	Legit     map[string]Outcomes `json:"legitimate"`
	Hostile   map[string]Outcomes `json:"hostile"`
	Reloads   Outcomes            `json:"reloads"`
	// LegitFailed counts legitimate requests answered other than with
	// success or 503 + Retry-After (ResourceExhausted over gRPC); Failures
	// are the first of them.
	LegitFailed    int      `json:"legitimate_failed"`
	Failures       []string `json:"failures,omitempty"`
	StartRSSMB     float64  `json:"start_rss_mb"`
	PeakRSSMB      float64  `json:"peak_rss_mb"`
	EndRSSMB       float64  `json:"end_rss_mb"`
	PeakGoroutines int      `json:"peak_goroutines"`
	LegitRequests  int      `json:"legitimate_requests"`
	// Latency is each legitimate kind's p50, p99 and largest answer time
	// in seconds.
	Latency         map[string][3]float64 `json:"legitimate_latency_s"`
	HostileRequests int                   `json:"hostile_requests"`
}

type run struct {
	o       Options
	start   time.Time
	lat     map[string][]float64 // legitimate answers' seconds, by kind
	mu      sync.Mutex
	legit   map[string]Outcomes
	hostile map[string]Outcomes
	reloads Outcomes
	failed  int
	fails   []string
	client  *http.Client
}

func (r *run) count(m map[string]Outcomes, kind, outcome string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if m[kind] == nil {
		m[kind] = Outcomes{}
	}
	m[kind][outcome]++
}

// legitOutcome records a legitimate request's answer, sent at sent;
// anything but success or a retry-later refusal is a failure.
func (r *run) legitOutcome(kind, outcome string, ok bool, sent time.Time) {
	r.count(r.legit, kind, outcome)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lat[kind] = append(r.lat[kind], time.Since(sent).Seconds())
	if !ok {
		r.failed++
		if len(r.fails) < 20 {
			r.fails = append(r.fails, fmt.Sprintf("%s: %s (sent at %.1f s, after %.1f s)", kind, outcome, sent.Sub(r.start).Seconds(), time.Since(sent).Seconds()))
		}
	}
}

// Run soaks the server and returns the report.
func Run(ctx context.Context, o Options) (Report, error) {
	if len(o.Days) < 8 {
		return Report{}, fmt.Errorf("soak: want at least 8 real days, got %d", len(o.Days))
	}
	r := &run{o: o, legit: map[string]Outcomes{}, hostile: map[string]Outcomes{}, reloads: Outcomes{}, lat: map[string][]float64{}, start: time.Now(),
		client: &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
	conn, err := grpc.NewClient(o.GRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return Report{}, err
	}
	defer conn.Close()
	keda := externalscaler.NewExternalScalerClient(conn)
	if err := r.pushDays(ctx); err != nil {
		return Report{}, fmt.Errorf("soak: the first push: %w", err)
	}
	rep := Report{StartRSSMB: rssMB(o.PID)}
	// The run lasts Duration, and longer (up to twice) until every reload
	// asked for has been done.
	ctx, cancel := context.WithTimeout(ctx, 2*o.Duration)
	defer cancel()
	reloadsDone := make(chan struct{})
	go func() {
		select {
		case <-time.After(o.Duration):
		case <-ctx.Done():
		}
		select {
		case <-reloadsDone:
		case <-ctx.Done():
		}
		cancel()
	}()
	start := time.Now()
	var wg sync.WaitGroup
	spawn := func(n int, f func(ctx context.Context, i int)) {
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					f(ctx, i)
				}
			}()
		}
	}
	spawn(2, r.forecast)
	spawn(2, r.prewarm)
	spawn(1, r.v2)
	spawn(1, r.observe)
	spawn(2, func(ctx context.Context, i int) { r.keda(ctx, keda, i) })
	spawn(1, r.oversized)
	spawn(1, r.longIDs)
	spawn(1, r.emptyObjects)
	spawn(1, r.tokenless)
	spawn(o.SlowBodies, r.slowBody)
	wg.Add(2)
	go func() { defer wg.Done(); r.streamFlood(ctx) }()
	go func() { defer wg.Done(); defer close(reloadsDone); r.reload(ctx) }()

	var peakRSS atomic.Int64
	var peakG atomic.Int64
	mon := time.NewTicker(500 * time.Millisecond)
	defer mon.Stop()
	lastLine := time.Now()
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-mon.C:
			rss := int64(rssMB(o.PID))
			if rss > peakRSS.Load() {
				peakRSS.Store(rss)
			}
			if g := r.goroutines(); int64(g) > peakG.Load() {
				peakG.Store(int64(g))
			}
			if o.Progress != nil && time.Since(lastLine) > 5*time.Second {
				lastLine = time.Now()
				r.mu.Lock()
				fmt.Fprintf(o.Progress, "soak: %3.0fs  rss %4d MB (peak %4d)  goroutines peak %5d  legitimate failures %d  reloads %v\n",
					time.Since(start).Seconds(), rss, peakRSS.Load(), peakG.Load(), r.failed, r.reloads)
				r.mu.Unlock()
			}
		}
	}
	wg.Wait()
	rep.DurationS = time.Since(start).Seconds()
	rep.Legit, rep.Hostile, rep.Reloads = r.legit, r.hostile, r.reloads
	rep.LegitFailed, rep.Failures = r.failed, r.fails
	rep.Latency = map[string][3]float64{}
	for k, xs := range r.lat {
		slices.Sort(xs)
		rep.Latency[k] = [3]float64{xs[len(xs)/2], xs[len(xs)*99/100], xs[len(xs)-1]}
	}
	rep.PeakRSSMB, rep.PeakGoroutines = float64(peakRSS.Load()), int(peakG.Load())
	time.Sleep(time.Second)
	rep.EndRSSMB = rssMB(o.PID)
	for _, m := range rep.Legit {
		for _, n := range m {
			rep.LegitRequests += n
		}
	}
	for _, m := range rep.Hostile {
		for _, n := range m {
			rep.HostileRequests += n
		}
	}
	return rep, nil
}

// post sends a JSON body and returns the outcome and whether it counts as
// an acceptable answer (2xx, or 503 with Retry-After).
func (r *run) post(ctx context.Context, path string, body []byte, header ...string) (string, bool) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, r.o.HTTP+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := r.client.Do(req)
	if err != nil {
		if ended(ctx) {
			return "cancelled at the end", true
		}
		return "error: " + err.Error(), false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "":
		return "503+retry", true
	case resp.StatusCode/100 == 2:
		return strconv.Itoa(resp.StatusCode), true
	}
	return strconv.Itoa(resp.StatusCode), false
}

func (r *run) legitPost(ctx context.Context, kind, path string, body []byte, header ...string) {
	sent := time.Now()
	out, ok := r.post(ctx, path, body, header...)
	if out == "cancelled at the end" {
		return
	}
	r.legitOutcome(kind, out, ok, sent)
}

func (r *run) days(i, n int) []trace.Function {
	out := make([]trace.Function, n)
	for j := range out {
		out[j] = r.o.Days[(i*n+j)%len(r.o.Days)]
	}
	return out
}

func forecastBody(days []trace.Function) []byte {
	type fn struct {
		ID     string    `json:"id"`
		Counts []float64 `json:"counts"`
	}
	var b struct {
		Functions []fn `json:"functions"`
	}
	for _, d := range days {
		b.Functions = append(b.Functions, fn{d.ID, d.Counts})
	}
	out, _ := json.Marshal(b)
	return out
}

func (r *run) forecast(ctx context.Context, i int) {
	r.legitPost(ctx, "POST /v1/forecast (8 functions)", "/v1/forecast", forecastBody(r.days(i, 8)))
}

func (r *run) prewarm(ctx context.Context, i int) {
	r.legitPost(ctx, "POST /v1/prewarm", "/v1/prewarm", forecastBody(r.days(i+int(time.Now().UnixNano()%97), 1)))
}

func (r *run) v2(ctx context.Context, i int) {
	days := r.days(i+int(time.Now().UnixNano()%89), 4)
	var data []float64
	for _, d := range days {
		data = append(data, d.Counts...)
	}
	body, _ := json.Marshal(map[string]any{"inputs": []map[string]any{{"name": "counts", "datatype": "FP32", "shape": []int{4, len(days[0].Counts)}, "data": data}}})
	r.legitPost(ctx, "POST /v2/models/mesp/infer (4 functions)", "/v2/models/mesp/infer", body)
}

// pushedIDs are the functions pushed and asked about by KEDA's calls.
func pushedID(i int) string { return fmt.Sprintf("soak-pushed-%d", i) }

const pushed = 16

// pushDays pushes a whole day for each pushed function, so that KEDA's
// calls have history to decide from.
func (r *run) pushDays(ctx context.Context) error {
	now := time.Now().Unix() / 60
	for i := range pushed {
		d := r.o.Days[i%len(r.o.Days)].Counts
		var sb strings.Builder
		sb.WriteString(`{"observations":[`)
		for m, c := range d {
			if m > 0 {
				sb.WriteByte(',')
			}
			fmt.Fprintf(&sb, `{"id":%q,"minute":%q,"count":%g}`, pushedID(i), time.Unix((now-int64(len(d))+int64(m))*60, 0).UTC().Format(time.RFC3339), c)
		}
		sb.WriteString(`]}`)
		if out, ok := r.post(ctx, "/v1/observe", []byte(sb.String()), "Authorization", "Bearer "+r.o.WriteToken); !ok || out != "200" {
			return fmt.Errorf("%s: %s", pushedID(i), out)
		}
	}
	return nil
}

// observe pushes the current minute of every pushed function.
func (r *run) observe(ctx context.Context, i int) {
	minute := time.Now().UTC().Truncate(time.Minute).Add(-time.Minute).Format(time.RFC3339)
	var parts []string
	for f := range pushed {
		parts = append(parts, fmt.Sprintf(`{"id":%q,"minute":%q,"count":%d}`, pushedID(f), minute, (i+f)%7))
	}
	r.legitPost(ctx, "POST /v1/observe", "/v1/observe", []byte(`{"observations":[`+strings.Join(parts, ",")+`]}`), "Authorization", "Bearer "+r.o.WriteToken)
	sleep(ctx, 200*time.Millisecond)
}

func (r *run) keda(ctx context.Context, c externalscaler.ExternalScalerClient, i int) {
	ref := &externalscaler.ScaledObjectRef{Name: "soak", Namespace: "default", ScalerMetadata: map[string]string{"function": pushedID(int(time.Now().UnixNano() % pushed))}}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	sent := time.Now()
	var err error
	if i%2 == 0 {
		_, err = c.IsActive(cctx, ref)
	} else {
		_, err = c.GetMetrics(cctx, &externalscaler.GetMetricsRequest{ScaledObjectRef: ref})
	}
	if ended(ctx) {
		return
	}
	code := status.Code(err)
	r.legitOutcome("KEDA IsActive/GetMetrics", "grpc:"+code.String(), code == codes.OK || code == codes.ResourceExhausted, sent)
}

func (r *run) hostileOutcome(kind, outcome string) { r.count(r.hostile, kind, outcome) }

// oversized announces and sends a 40 MiB body.
func (r *run) oversized(ctx context.Context, _ int) {
	body := bytes.Repeat([]byte("1,"), 20<<20)
	out, _ := r.post(ctx, "/v1/forecast", append(append([]byte(`{"counts":[`), body...), '1', ']', '}'))
	r.hostileOutcome("40 MiB body", out)
}

// longIDs sends ids of a megabyte to forecast and observe.
func (r *run) longIDs(ctx context.Context, i int) {
	id := strings.Repeat("x", 1<<20)
	d := r.o.Days[i%len(r.o.Days)].Counts
	b, _ := json.Marshal(map[string]any{"id": id, "counts": d})
	out, _ := r.post(ctx, "/v1/forecast", b)
	r.hostileOutcome("1 MiB id", out)
	out, _ = r.post(ctx, "/v1/observe", []byte(`{"observations":[{"id":"`+id+`","minute":"2026-01-01T00:00:00Z","count":1}]}`), "Authorization", "Bearer "+r.o.WriteToken)
	r.hostileOutcome("1 MiB id", out)
}

// emptyObjects sends 8 MiB of {} to observe and V2.
func (r *run) emptyObjects(ctx context.Context, _ int) {
	many := strings.Repeat("{},", 2<<20) + "{}"
	out, _ := r.post(ctx, "/v1/observe", []byte(`{"observations":[`+many+`]}`), "Authorization", "Bearer "+r.o.WriteToken)
	r.hostileOutcome("8 MiB of {}", out)
	out, _ = r.post(ctx, "/v2/models/mesp/infer", []byte(`{"inputs":[`+many+`]}`))
	r.hostileOutcome("8 MiB of {}", out)
}

// tokenless pushes zeros for a pushed function without the token.
func (r *run) tokenless(ctx context.Context, _ int) {
	minute := time.Now().UTC().Truncate(time.Minute).Add(-time.Minute).Format(time.RFC3339)
	out, _ := r.post(ctx, "/v1/observe", []byte(fmt.Sprintf(`{"observations":[{"id":%q,"minute":%q,"count":0}]}`, pushedID(0), minute)))
	r.hostileOutcome("push without the token", out)
	sleep(ctx, 100*time.Millisecond)
}

// slowBody announces a day and trickles a byte every 200 ms until the
// server gives up on it.
func (r *run) slowBody(ctx context.Context, _ int) {
	c, err := net.Dial("tcp", strings.TrimPrefix(r.o.HTTP, "http://"))
	if err != nil {
		r.hostileOutcome("slow body", "dial: "+err.Error())
		sleep(ctx, time.Second)
		return
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /v1/forecast HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{\"counts\":[", 30<<20)
	for ctx.Err() == nil {
		if _, err := c.Write([]byte("1,")); err != nil {
			r.hostileOutcome("slow body", "cut by the server")
			return
		}
		sleep(ctx, 200*time.Millisecond)
	}
}

// streamFlood opens Streams StreamIsActive streams from a connection of
// its own (another pod's) and holds them.
func (r *run) streamFlood(ctx context.Context) {
	conn, err := grpc.NewClient(r.o.GRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		r.hostileOutcome("StreamIsActive flood", "dial: "+err.Error())
		return
	}
	defer conn.Close()
	c := externalscaler.NewExternalScalerClient(conn)
	var wg sync.WaitGroup
	for i := range r.o.Streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := c.StreamIsActive(ctx, &externalscaler.ScaledObjectRef{Name: "flood", ScalerMetadata: map[string]string{"function": pushedID(i % pushed)}})
			if err == nil {
				_, err = st.Recv()
			}
			if ctx.Err() != nil {
				return
			}
			r.hostileOutcome("StreamIsActive flood", "grpc:"+status.Code(err).String())
			if err == nil {
				<-ctx.Done()
			}
		}()
	}
	wg.Wait()
}

// reload asks for Reloads hot reloads spread over the run.
func (r *run) reload(ctx context.Context) {
	if r.o.Reloads <= 0 {
		return
	}
	// On a fixed schedule: a reload that took longer than the gap is
	// followed at once by the next.
	every := r.o.Duration / time.Duration(r.o.Reloads+1)
	start := time.Now()
	for i := range r.o.Reloads {
		if !sleep(ctx, time.Until(start.Add(time.Duration(i+1)*every))) {
			return
		}
		out, ok := r.post(ctx, "/v1/admin/reload", nil, "Authorization", "Bearer "+r.o.AdminToken)
		r.mu.Lock()
		r.reloads[out]++
		if !ok && out != "cancelled at the end" {
			r.failed++
			r.fails = append(r.fails, "reload: "+out)
		}
		r.mu.Unlock()
	}
}

func (r *run) goroutines() int {
	resp, err := r.client.Get(r.o.HTTP + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "go_goroutines "); ok {
			n, _ := strconv.ParseFloat(v, 64)
			return int(n)
		}
	}
	return 0
}

// rssMB is a process's resident memory in MB (Linux).
func rssMB(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// ended says the run is over: ctx is done or its deadline has passed (a
// call derived from it fails at once with DeadlineExceeded before ctx's
// own timer fires).
func ended(ctx context.Context) bool {
	dl, ok := ctx.Deadline()
	return ctx.Err() != nil || ok && !time.Now().Before(dl)
}

// sleep waits d or until ctx ends; false when ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}
