// Package fleetbench measures a whole platform's minute: N functions built
// from real days (each a dev row's day rotated by a different number of
// minutes, under a fresh id), held in one history store, decided minute
// after minute by the decision loop (package decide), while KEDA's
// GetMetrics is asked over gRPC about random functions. Beside it, the
// same functions answered the way a caller without the table gets them,
// one request per function, on a sample: the ratio to beat.
package fleetbench

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/mesp-project/mesp/decide"
	"github.com/mesp-project/mesp/forecast"
	"github.com/mesp-project/mesp/history"
	"github.com/mesp-project/mesp/loadgen"
	"github.com/mesp-project/mesp/onnx"
	"github.com/mesp-project/mesp/procstat"
	"github.com/mesp-project/mesp/scaler"
	"github.com/mesp-project/mesp/trace"
)

// Options are one run's.
type Options struct {
	Rows      []trace.Function // the real days the fleet is built from
	Functions int
	Minutes   int // minutes decided, one after another
	// Sample is how many functions the one-request-per-function baseline
	// answers.
	Sample int
	Batch  int
	// Workers and Nice are the loop's (decide.Loop: config decide.workers
	// and decide.nice).
	Workers, Nice int
	Predictor     decide.Predictor
	// Runs, when set, counts the Predictor's model runs (the models
	// loaded with onnx.Options.Stats): each minute reports its share.
	Runs *onnx.RunStats
	// Threshold is the set's default pre-warm threshold (KEDA's default).
	Threshold float64
	// CallRate is KEDA's GetMetrics calls a second while a minute is
	// decided, sent on a schedule (open loop); 0: one call after another
	// as fast as they are answered (closed loop: the most the loop can be
	// asked, and CPU it takes from the loop).
	CallRate float64
	// Callers is how many callers send those calls, each one at a time
	// (KEDA's metrics adapter answers the HPA controller's syncs, 5 at
	// once by default, concurrently); 0: 1.
	Callers  int
	Progress func(string)
	// HeapProfile, when set, gets the live heap's profile (pprof) after
	// the last minute, the store and the table still in use: what the
	// fleet's memory is made of.
	HeapProfile io.Writer
	// CPUProfile, when set, gets a CPU profile (pprof) of the minutes
	// decided from a table (all but the first, which has none: its calls
	// compute), or of the only one.
	CPUProfile io.Writer
	// Caller, when set, starts KEDA's calls of a minute in a process of
	// their own, as KEDA's operator is (RunCaller is that process's
	// side); nil: goroutines of this process, which share its scheduler
	// and collector.
	Caller Caller
}

// Caller starts GetMetrics calls to the scaler at addr about functions
// fleet/0..n-1, rate a second from callers callers (CallWhile), until
// stop, which returns what they measured.
type Caller func(addr string, n int, rate float64, callers int, seed uint64) (stop func() (CallStats, error), err error)

// CallStats are a caller's latencies, in milliseconds, and its answered
// calls.
type CallStats struct {
	P50   float64 `json:"p50_ms"`
	P99   float64 `json:"p99_ms"`
	Calls int     `json:"calls"`
	// Refused is the calls answered with an error (ResourceExhausted while
	// the first table is decided), not in the latencies.
	Refused int `json:"refused"`
}

// Minute is one decided minute's figures.
type Minute struct {
	WallSeconds   float64 `json:"wall_seconds"`
	CPUSeconds    float64 `json:"cpu_seconds"`
	CPUUsPerFunc  float64 `json:"cpu_us_per_function"`
	Functions     int     `json:"functions"`
	Skipped       int     `json:"skipped"`
	GetMetricsP50 float64 `json:"getmetrics_p50_ms_while_deciding"`
	GetMetricsP99 float64 `json:"getmetrics_p99_ms_while_deciding"`
	Calls         int     `json:"getmetrics_calls_while_deciding"`
	// Refused is the calls answered with an error meanwhile
	// (ResourceExhausted while the first table is decided: decide.Loop.FirstPending).
	Refused int `json:"getmetrics_refused_while_deciding"`
	// PeakRSSMiB is the most resident memory while the minute was
	// decided (the process's peak, reset before the minute).
	PeakRSSMiB float64 `json:"peak_rss_mib"`
	// PeakGoMiB is the most memory the Go runtime held from the system
	// meanwhile (sampled every 50 ms): the rest of the RSS is ONNX
	// Runtime's and the C allocator's.
	PeakGoMiB float64 `json:"peak_go_runtime_mib"`
	// Models is each model's rows and seconds in ONNX Runtime while the
	// minute was decided (Options.Runs): where the decision's time goes.
	Models map[string]ModelMinute `json:"models,omitempty"`
}

// ModelMinute is one model's runs in a decided minute.
type ModelMinute struct {
	Rows    int64   `json:"rows"`
	Seconds float64 `json:"seconds"`
	// UsPerRow is Seconds over Rows, in microseconds.
	UsPerRow float64 `json:"us_per_row"`
}

// modelMinutes is the runs since before, by model (nil without runs).
func modelMinutes(runs *onnx.RunStats, before map[string]onnx.RunStat) map[string]ModelMinute {
	if runs == nil {
		return nil
	}
	out := map[string]ModelMinute{}
	for id, st := range runs.Since(before) {
		if st.Rows > 0 {
			out[id] = ModelMinute{Rows: st.Rows, Seconds: st.Seconds, UsPerRow: 1e6 * st.Seconds / float64(st.Rows)}
		}
	}
	return out
}

// Report is the run's.
type Report struct {
	Functions int      `json:"functions"`
	Built     string   `json:"built_from"`
	Minutes   []Minute `json:"minutes"`
	// TableGetMetricsP50/P99 are KEDA's GetMetrics latencies once the
	// minute's table is in service (over loopback gRPC).
	TableGetMetricsP50 float64 `json:"getmetrics_p50_ms_from_table"`
	TableGetMetricsP99 float64 `json:"getmetrics_p99_ms_from_table"`
	// PerRequestCPUUsPerFunc is the baseline: one Predict per function
	// (as KEDA's calls and /v1/prewarm did), on Sample functions.
	PerRequestCPUUsPerFunc float64 `json:"per_request_cpu_us_per_function"`
	PerRequestSample       int     `json:"per_request_sample"`
	// CPURatio is the table's CPU per function over the baseline's.
	CPURatio   float64 `json:"table_over_per_request_cpu"`
	StoreMiB   float64 `json:"history_heap_mib"`
	PeakRSSMiB float64 `json:"peak_rss_mib"`
	// HeapMiB is the most Go heap in use after a decided minute (the rest
	// of the RSS is ONNX Runtime's, the allocators' and garbage not yet
	// collected).
	HeapMiB float64 `json:"go_heap_in_use_mib"`
	// GoMemoryLimitMiB is the Go runtime's soft memory limit the minutes
	// ran under (server.go_memory_limit_bytes); 0: none.
	GoMemoryLimitMiB float64 `json:"go_memory_limit_mib"`
	Cores            int     `json:"cores"`
	PromQueries      string  `json:"prometheus_queries_per_refresh"`
	FunctionsPer     string  `json:"note"`
	// CallRate is Options.CallRate (0: closed loop), Callers
	// Options.Callers.
	CallRate float64 `json:"keda_calls_per_second"`
	Callers  int     `json:"keda_callers"`
	// Workers and Nice are the loop's settings (0 workers: one per core).
	Workers int `json:"decide_workers"`
	Nice    int `json:"decide_nice"`
}

// Run builds the fleet and measures it.
func Run(ctx context.Context, o Options) (Report, error) {
	if len(o.Rows) == 0 || o.Functions < 1 || o.Minutes < 1 {
		return Report{}, fmt.Errorf("fleetbench: %d rows, %d functions, %d minutes", len(o.Rows), o.Functions, o.Minutes)
	}
	progress := o.Progress
	if progress == nil {
		progress = func(string) {}
	}
	// minute 0 of every day is minute start; the first decided minute is
	// start+1440, each later one a new minute of every function later
	start := time.Now().Unix()/60 - 1440 - int64(o.Minutes)
	// function i's count at minute m of its day (m may pass 1440: the
	// day repeats)
	countAt := func(i, m int) float64 {
		row := o.Rows[i%len(o.Rows)].Counts
		return row[((i/len(o.Rows))*37+m)%len(row)]
	}
	id := func(i int) string { return "fleet/" + strconv.Itoa(i) }
	// the minutes after the first day, kept apart so that the rows (the
	// bench's input, no server's memory) can go before the fleet is
	// measured
	later := make([][]float32, o.Minutes-1)
	for k := range later {
		later[k] = make([]float32, o.Functions)
		for i := range o.Functions {
			later[k][i] = float32(countAt(i, 1440+k))
		}
	}
	built := fmt.Sprintf("%d real days, function i = day i mod %d rotated by 37 x (i div %d) minutes, ids fleet/<i>; pushed into the store in-process", len(o.Rows), len(o.Rows), len(o.Rows))
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	store := history.New(1440, o.Functions+1)
	obs := make([]history.Observation, 1440)
	for i := range o.Functions {
		for m := range 1440 {
			obs[m] = history.Observation{ID: id(i), Minute: start + int64(m), Count: countAt(i, m)}
		}
		if _, _, err := store.Observe(obs); err != nil {
			return Report{}, err
		}
		if i%10000 == 9999 {
			progress(fmt.Sprintf("built %d of %d functions", i+1, o.Functions))
		}
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	storeMiB := float64(after.HeapAlloc-before.HeapAlloc) / (1 << 20)
	o.Rows = nil
	// the table keeps the quantile KEDA's demand defaults to, as serve does
	loop := &decide.Loop{Predictor: o.Predictor, History: store, Batch: o.Batch, Workers: o.Workers, Nice: o.Nice,
		Quantiles: []float64{scaler.DefaultQuantile}}
	if err := loop.Register(prometheus.NewRegistry()); err != nil {
		return Report{}, err
	}
	var now simulatedMinute
	srv := &scaler.Server{Predictor: o.Predictor, History: store, Now: now.time,
		DefaultThreshold: func() float64 { return o.Threshold },
		Decisions:        loop.Lookup, Pending: loop.FirstPending}
	client, addr, stop, err := serveGRPC(srv)
	if err != nil {
		return Report{}, err
	}
	defer stop()
	callers := max(1, o.Callers)
	rep := Report{GoMemoryLimitMiB: goMemoryLimitMiB(), Functions: o.Functions, Cores: runtime.NumCPU(), CallRate: o.CallRate, Callers: callers, Workers: o.Workers, Nice: o.Nice,
		Built:        built,
		PromQueries:  "1 (the grouped query of package promread; not in this loop: the store is filled in-process)",
		FunctionsPer: callNote(o.CallRate, callers, o.Caller != nil) + "; while the first minute is decided there is no table and calls are refused ResourceExhausted (decide.Loop.FirstPending); later, calls answer from the previous minute's table until the new one is in service (decide.max_age)"}
	rng := rand.New(rand.NewPCG(1, 2))
	for k := range o.Minutes {
		minute := start + 1440 + int64(k)
		if k > 0 { // the minute just closed: each function's next count
			for i := range o.Functions {
				obs[0] = history.Observation{ID: id(i), Minute: minute - 1, Count: float64(later[k-1][i])}
				if _, _, err := store.Observe(obs[:1]); err != nil {
					return Report{}, err
				}
			}
		}
		now.Store(minute)
		if o.CPUProfile != nil && k == min(1, o.Minutes-1) {
			if err := pprof.StartCPUProfile(o.CPUProfile); err != nil {
				return rep, fmt.Errorf("fleetbench: CPU profile: %w", err)
			}
			defer pprof.StopCPUProfile()
		}
		rep.PeakRSSMiB = max(rep.PeakRSSMiB, procstat.PeakRSSMiB())
		resetPeak := procstat.ResetPeakRSS() == nil
		var runs0 map[string]onnx.RunStat
		if o.Runs != nil {
			runs0 = o.Runs.Snapshot()
		}
		cpu0, t0 := procstat.CPUSeconds(), time.Now()
		stopCalls, err := startCalls(ctx, o, client, addr, callers, rng)
		if err != nil {
			return rep, err
		}
		stopSampling := sampleGoMemory()
		err = loop.Decide(ctx, minute)
		calls, callErr := stopCalls()
		peakGo := stopSampling()
		if err != nil {
			return rep, err
		}
		if callErr != nil {
			return rep, callErr
		}
		wall, cpu := time.Since(t0).Seconds(), procstat.CPUSeconds()-cpu0
		t := loop.Current()
		m := Minute{WallSeconds: wall, CPUSeconds: cpu, CPUUsPerFunc: 1e6 * cpu / float64(max(1, len(t.Entries))),
			Functions: len(t.Entries), Skipped: t.Skipped, Calls: calls.Calls, Refused: calls.Refused, PeakGoMiB: peakGo,
			GetMetricsP50: calls.P50, GetMetricsP99: calls.P99, Models: modelMinutes(o.Runs, runs0)}
		if resetPeak {
			m.PeakRSSMiB = procstat.PeakRSSMiB()
		}
		rep.Minutes = append(rep.Minutes, m)
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		rep.HeapMiB = max(rep.HeapMiB, float64(ms.HeapInuse)/(1<<20))
		progress(fmt.Sprintf("minute %d of %d: %d functions decided in %.1f s (%.0f us CPU each), GetMetrics p99 %.1f ms while deciding (%d answered, %d refused), peak RSS %.0f MiB (Go %.0f MiB)",
			k+1, o.Minutes, m.Functions, wall, m.CPUUsPerFunc, m.GetMetricsP99, m.Calls, m.Refused, m.PeakRSSMiB, m.PeakGoMiB))
	}
	if o.CPUProfile != nil {
		pprof.StopCPUProfile()
	}
	if o.HeapProfile != nil {
		runtime.GC()
		if err := pprof.WriteHeapProfile(o.HeapProfile); err != nil {
			return rep, fmt.Errorf("fleetbench: heap profile: %w", err)
		}
		runtime.KeepAlive(loop)
	}
	// from the table: a few seconds of calls
	var lat []time.Duration
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		t0 := time.Now()
		if err := getMetrics(ctx, client, id(rng.IntN(o.Functions))); err != nil {
			return rep, err
		}
		lat = append(lat, time.Since(t0))
	}
	rep.TableGetMetricsP50, rep.TableGetMetricsP99 = loadgen.Percentiles(lat)
	// the baseline: one request per function
	n := min(o.Sample, o.Functions)
	cpu0 := procstat.CPUSeconds()
	for i := range n {
		counts, err := store.Window(id(i), now.Load())
		if err != nil {
			return rep, err
		}
		if _, err := o.Predictor.Predict(ctx, []forecast.Request{{ID: id(i), Counts: counts}}, forecast.Routed, forecast.Counts|forecast.PInvoke); err != nil {
			return rep, err
		}
	}
	rep.PerRequestSample = n
	rep.PerRequestCPUUsPerFunc = 1e6 * (procstat.CPUSeconds() - cpu0) / float64(max(1, n))
	if last := rep.Minutes[len(rep.Minutes)-1]; rep.PerRequestCPUUsPerFunc > 0 {
		rep.CPURatio = last.CPUUsPerFunc / rep.PerRequestCPUUsPerFunc
	}
	rep.StoreMiB = storeMiB
	rep.PeakRSSMiB = max(rep.PeakRSSMiB, procstat.PeakRSSMiB())
	return rep, nil
}

// goMemoryLimitMiB is the Go runtime's soft memory limit; 0: none.
func goMemoryLimitMiB() float64 {
	if l := debug.SetMemoryLimit(-1); l < math.MaxInt64 {
		return float64(l) / (1 << 20)
	}
	return 0
}

// sampleGoMemory samples the memory the Go runtime holds from the system
// (mapped, less what it has released) until stop, which returns the most
// seen, in MiB.
func sampleGoMemory() (stop func() float64) {
	samples := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	held := func() float64 {
		metrics.Read(samples)
		return float64(samples[0].Value.Uint64()-samples[1].Value.Uint64()) / (1 << 20)
	}
	done, peak := make(chan struct{}), make(chan float64)
	go func() {
		most := held()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				peak <- max(most, held())
				return
			case <-tick.C:
				most = max(most, held())
			}
		}
	}()
	return func() float64 { close(done); return <-peak }
}

// callNote says how KEDA's calls were sent.
func callNote(rate float64, callers int, ownProcess bool) string {
	where := "goroutines of the bench's process"
	if ownProcess {
		where = "a process of their own, as KEDA's operator is"
	}
	if rate > 0 {
		return fmt.Sprintf("GetMetrics over loopback gRPC about random functions, %.0f calls a second on a schedule (open loop) from %d concurrent callers in %s", rate, callers, where)
	}
	return fmt.Sprintf("GetMetrics over loopback gRPC about random functions, %d callers each one call after another as fast as answered (closed loop) in %s", callers, where)
}

// startCalls starts a minute's GetMetrics calls, in o.Caller's process or
// in this one.
func startCalls(ctx context.Context, o Options, client externalscaler.ExternalScalerClient, addr string, callers int, rng *rand.Rand) (stop func() (CallStats, error), err error) {
	if o.Caller != nil {
		return o.Caller(addr, o.Functions, o.CallRate, callers, rng.Uint64())
	}
	stopCalls := CallWhile(ctx, client, o.Functions, o.CallRate, callers, rng)
	return func() (CallStats, error) { return stopCalls(), nil }, nil
}

// RunCaller is a Caller's process: it calls the scaler at addr as
// CallWhile does until stop is closed, and returns the latencies.
func RunCaller(ctx context.Context, addr string, n int, rate float64, callers int, seed uint64, stop <-chan struct{}) (CallStats, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return CallStats{}, err
	}
	defer conn.Close()
	stopCalls := CallWhile(ctx, externalscaler.NewExternalScalerClient(conn), n, rate, callers, rand.New(rand.NewPCG(seed, 2)))
	select {
	case <-stop:
	case <-ctx.Done():
	}
	return stopCalls(), ctx.Err()
}

// simulatedMinute is the minute being decided, which the scaler takes for
// the current one.
type simulatedMinute struct{ atomic.Int64 }

// time is a moment 30 s into the minute.
func (m *simulatedMinute) time() time.Time { return time.Unix(m.Load()*60+30, 0) }

// serveGRPC serves srv on a loopback port, at addr, and connects KEDA's
// client.
func serveGRPC(srv *scaler.Server) (c externalscaler.ExternalScalerClient, addr string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", nil, err
	}
	g := scaler.NewGRPC(srv, prometheus.NewRegistry(), scaler.Limits{})
	go g.Serve(ln)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		g.Stop()
		return nil, "", nil, err
	}
	return externalscaler.NewExternalScalerClient(conn), ln.Addr().String(), func() { conn.Close(); g.Stop() }, nil
}

func getMetrics(ctx context.Context, c externalscaler.ExternalScalerClient, function string) error {
	ref := &externalscaler.ScaledObjectRef{Name: "bench", ScalerMetadata: map[string]string{scaler.KeyFunction: function}}
	_, err := c.GetMetrics(ctx, &externalscaler.GetMetricsRequest{ScaledObjectRef: ref, MetricName: scaler.MetricName(function)})
	return err
}

// CallWhile asks GetMetrics about random functions from callers (at
// least 1) concurrent callers, each one call at a time (rate > 0: call k at its
// scheduled time k/rate, by caller k mod callers, timed from that time, so
// a late answer counts its wait), until stop is called; stop returns the
// answered calls' latencies and count, and the number refused (an error;
// not timed).
func CallWhile(ctx context.Context, c externalscaler.ExternalScalerClient, n int, rate float64, callers int, rng *rand.Rand) (stop func() CallStats) {
	var lat []time.Duration
	var refusals atomic.Int64
	var mu sync.Mutex
	done := make(chan struct{})
	var wg sync.WaitGroup
	ids := make([]int, 0, 1024)
	for range 1024 {
		ids = append(ids, rng.IntN(n))
	}
	begin := time.Now()
	for first := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := first; ; k += callers {
				select {
				case <-done:
					return
				default:
				}
				t0 := time.Now()
				if rate > 0 {
					t0 = begin.Add(time.Duration(float64(k) / rate * float64(time.Second)))
					if wait := time.Until(t0); wait > 0 {
						select {
						case <-done:
							return
						case <-time.After(wait):
						}
					}
				}
				if err := getMetrics(ctx, c, "fleet/"+strconv.Itoa(ids[k%len(ids)])); err != nil {
					refusals.Add(1)
					continue
				}
				d := time.Since(t0)
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}
		}()
	}
	return func() CallStats {
		close(done)
		wg.Wait()
		p50, p99 := loadgen.Percentiles(lat)
		return CallStats{P50: p50, P99: p99, Calls: len(lat), Refused: int(refusals.Load())}
	}
}
