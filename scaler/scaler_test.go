package scaler_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/mesp-project/mesp/decide"
	"github.com/mesp-project/mesp/forecast"
	"github.com/mesp-project/mesp/history"
	"github.com/mesp-project/mesp/scaler"
	"github.com/mesp-project/mesp/shard"
)

// answer is a Predictor with fixed outputs (the end-to-end test in
// cmd/mesp runs the real models; this one pins the protocol's edges).
type answer struct {
	p, counts []float64
	err       error
}

func (a answer) Predict(_ context.Context, reqs []forecast.Request, _ forecast.Mode, _ forecast.Outputs) ([]forecast.Result, error) {
	if a.err != nil {
		return nil, a.err
	}
	return []forecast.Result{{ID: reqs[0].ID, PInvoke: float32s(a.p), Forecast: float32s(a.counts)}}, nil
}

func float32s(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

func ramp(start float64) []float64 {
	out := make([]float64, 60)
	for i := range out {
		out[i] = start + float64(i)
	}
	return out
}

func TestScalerProtocol(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	store := history.New(1440, 10)
	if _, _, err := store.Observe([]history.Observation{{ID: "f", Minute: now.Unix()/60 - 1, Count: 3}}); err != nil {
		t.Fatal(err)
	}
	p := ramp(0)
	p[0] = 0.3
	s := &scaler.Server{Predictor: answer{p: p, counts: ramp(10)}, History: store,
		DefaultThreshold: func() float64 { return 0.25 }, Now: func() time.Time { return now },
		Fresh: func(f string) error {
			if f == "unread" {
				return errors.New("promread: history not current")
			}
			return nil
		}}
	if _, _, err := store.Observe([]history.Observation{{ID: "unread", Minute: now.Unix()/60 - 600, Count: 3}}); err != nil {
		t.Fatal(err)
	}
	ref := func(md map[string]string) *externalscaler.ScaledObjectRef {
		return &externalscaler.ScaledObjectRef{Name: "w", Namespace: "ns", ScalerMetadata: md}
	}
	ctx := context.Background()
	cases := []struct {
		name   string
		md     map[string]string
		active bool
		demand float64
		code   codes.Code
	}{
		{"defaults: the manifest's threshold, 10 minutes", map[string]string{"function": "f"}, true, 19, codes.OK},
		{"a higher threshold", map[string]string{"function": "f", "threshold": "0.31"}, false, 19, codes.OK},
		{"demand over one minute", map[string]string{"function": "f", "demandMinutes": "1"}, true, 10, codes.OK},
		{"demand over the hour", map[string]string{"function": "f", "demandMinutes": "60"}, true, 69, codes.OK},
		{"no function", map[string]string{}, false, 0, codes.InvalidArgument},
		{"threshold above 1", map[string]string{"function": "f", "threshold": "1.5"}, false, 0, codes.InvalidArgument},
		{"threshold not a number", map[string]string{"function": "f", "threshold": "high"}, false, 0, codes.InvalidArgument},
		{"demand minutes 0", map[string]string{"function": "f", "demandMinutes": "0"}, false, 0, codes.InvalidArgument},
		{"demand minutes 61", map[string]string{"function": "f", "demandMinutes": "61"}, false, 0, codes.InvalidArgument},
		{"target 0", map[string]string{"function": "f", "target": "0"}, false, 0, codes.InvalidArgument},
		{"a target KEDA's int64 cannot hold", map[string]string{"function": "f", "target": "9.3e18"}, false, 0, codes.InvalidArgument},
		{"an unknown function", map[string]string{"function": "g"}, false, 0, codes.NotFound},
		{"a function id of a megabyte", map[string]string{"function": strings.Repeat("x", 1<<20)}, false, 0, codes.InvalidArgument},
		{"a function whose history the reader could not bring up to date", map[string]string{"function": "unread"}, false, 0, codes.Unavailable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, err := s.IsActive(ctx, ref(tc.md))
			m, merr := s.GetMetrics(ctx, &externalscaler.GetMetricsRequest{ScaledObjectRef: ref(tc.md)})
			if status.Code(err) != tc.code || status.Code(merr) != tc.code || len(status.Convert(err).Message()) > 300 {
				t.Fatalf("codes %v, %v; want %v", status.Code(err), status.Code(merr), tc.code)
			}
			if tc.code == codes.OK && (a.Result != tc.active || m.MetricValues[0].MetricValueFloat != tc.demand) {
				t.Fatalf("active %v demand %v; want %v %v", a.Result, m.MetricValues[0].MetricValueFloat, tc.active, tc.demand)
			}
		})
	}
	if _, err := s.GetMetrics(ctx, &externalscaler.GetMetricsRequest{ScaledObjectRef: ref(map[string]string{"function": "f"}), MetricName: "other"}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("another trigger's metric name: %v", err)
	}
	errs := []struct {
		err  error
		code codes.Code
	}{
		{fmt.Errorf("%w: 1 counts, want 240..1440", forecast.ErrInvalid), codes.FailedPrecondition},
		{forecast.ErrNotReady, codes.Unavailable},
		{forecast.ErrNoPInvoke, codes.FailedPrecondition},
		{context.DeadlineExceeded, codes.DeadlineExceeded},
	}
	for _, e := range errs {
		s := &scaler.Server{Predictor: answer{err: e.err}, History: store, DefaultThreshold: func() float64 { return 0.25 }, Now: func() time.Time { return now }}
		if _, err := s.IsActive(ctx, ref(map[string]string{"function": "f"})); status.Code(err) != e.code {
			t.Errorf("%v: %v, want %v", e.err, err, e.code)
		}
	}
	// Models that answer +Inf or NaN: KEDA got +Inf and a metricValue of
	// -9.2e18; now an error it can act on.
	for _, bad := range [][]float64{{math.Inf(1)}, {math.NaN()}} {
		counts := append(bad, ramp(0)[1:]...)
		s := &scaler.Server{Predictor: answer{p: ramp(0), counts: counts}, History: store, DefaultThreshold: func() float64 { return 0.25 }, Now: func() time.Time { return now }}
		if _, err := s.GetMetrics(ctx, &externalscaler.GetMetricsRequest{ScaledObjectRef: ref(map[string]string{"function": "f"})}); status.Code(err) != codes.Internal {
			t.Errorf("demand %v: %v, want Internal", bad[0], err)
		}
	}
	noDefault := &scaler.Server{Predictor: answer{p: p, counts: ramp(0)}, History: store, Now: func() time.Time { return now }}
	if _, err := noDefault.IsActive(ctx, ref(map[string]string{"function": "f"})); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("no default threshold and none given: %v", err)
	}
	if got := scaler.MetricName("Fn_1.prod"); got != "mesp-fn-1-prod" {
		t.Fatalf("metric name %q", got)
	}
}

// TestStreamsAndCallsAreBounded: StreamIsActive streams beyond
// Limits.MaxStreams are refused with ResourceExhausted (20,000 were all
// accepted: 21,734 goroutines, +925 MB), a closed stream makes room, and a
// call the shared in-flight budget refuses is ResourceExhausted too.
func TestStreamsAndCallsAreBounded(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	store := history.New(1440, 10)
	store.Observe([]history.Observation{{ID: "f", Minute: now.Unix()/60 - 1, Count: 3}})
	busy := false
	var mu sync.Mutex
	s := &scaler.Server{Predictor: answer{p: ramp(0), counts: ramp(0)}, History: store, DefaultThreshold: func() float64 { return 0.5 },
		Now: func() time.Time { return now }, StreamEvery: time.Hour,
		Admit: func(int) (func(), error) {
			mu.Lock()
			defer mu.Unlock()
			if busy {
				return nil, errors.New("server busy")
			}
			return func() {}, nil
		}}
	g := scaler.NewGRPC(s, prometheus.NewRegistry(), scaler.Limits{MaxStreams: 3})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(ln)
	defer g.Stop()
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	keda := externalscaler.NewExternalScalerClient(conn)
	ref := &externalscaler.ScaledObjectRef{Name: "w", ScalerMetadata: map[string]string{"function": "f"}}
	open := func() (context.CancelFunc, error) {
		ctx, cancel := context.WithCancel(context.Background())
		st, err := keda.StreamIsActive(ctx, ref)
		if err == nil {
			_, err = st.Recv()
		}
		return cancel, err
	}
	var cancels []context.CancelFunc
	for i := range 3 {
		cancel, err := open()
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		cancels = append(cancels, cancel)
	}
	if _, err := open(); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("a fourth stream: %v, want ResourceExhausted", err)
	}
	cancels[0]()
	var again error
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var cancel context.CancelFunc
		if cancel, again = open(); again == nil {
			defer cancel()
			break
		}
	}
	if again != nil {
		t.Fatalf("after one closed: %v", again)
	}
	for _, c := range cancels[1:] {
		c()
	}
	mu.Lock()
	busy = true
	mu.Unlock()
	if _, err := keda.IsActive(context.Background(), ref); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("over the in-flight budget: %v", err)
	}
}

// TestAnswersFromTheMinutesTable: with a decision table for the current
// minute, IsActive and GetMetrics answer from it without a model run (a
// failing Predictor proves none ran); for a minute or a function the
// table does not hold, the call computes as without one.
func TestAnswersFromTheMinutesTable(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 30, 0, time.UTC)
	minute := now.Unix() / 60
	store := history.New(1440, 10)
	store.Observe([]history.Observation{{ID: "f", Minute: minute - 1, Count: 3}, {ID: "g", Minute: minute - 1, Count: 3}})
	tableP, tableCounts := ramp(0), ramp(100)
	tableP[0] = 0.9
	var asked []int64
	s := &scaler.Server{Predictor: answer{err: errors.New("the models ran")}, History: store,
		DefaultThreshold: func() float64 { return 0.25 }, Now: func() time.Time { return now },
		Decisions: func(function string, m int64) (decide.Entry, bool) {
			asked = append(asked, m)
			if function != "f" {
				return decide.Entry{}, false
			}
			return decide.Entry{PInvoke: float32s(tableP), Forecast: float32s(tableCounts)}, true
		}}
	ctx := context.Background()
	ref := &externalscaler.ScaledObjectRef{Name: "x", ScalerMetadata: map[string]string{scaler.KeyFunction: "f", scaler.KeyDemandMinutes: "5", scaler.KeyQuantile: "mean"}}
	active, err := s.IsActive(ctx, ref)
	if err != nil || !active.Result {
		t.Fatalf("from the table: active %v, %v", active.GetResult(), err)
	}
	m, err := s.GetMetrics(ctx, &externalscaler.GetMetricsRequest{ScaledObjectRef: ref})
	if err != nil || m.MetricValues[0].MetricValueFloat != 104 {
		t.Fatalf("from the table: demand %v, %v; want the largest of the table's 5 minutes ahead, 104", m, err)
	}
	if asked[0] != minute {
		t.Fatalf("the table was asked for minute %d, want the current %d", asked[0], minute)
	}
	// a table a minute old answers 59 minutes: the demand over 60 is theirs
	tableP, tableCounts = tableP[1:], tableCounts[1:]
	all := &externalscaler.ScaledObjectRef{Name: "x", ScalerMetadata: map[string]string{scaler.KeyFunction: "f", scaler.KeyDemandMinutes: "60", scaler.KeyQuantile: "mean"}}
	if m, err := s.GetMetrics(ctx, &externalscaler.GetMetricsRequest{ScaledObjectRef: all}); err != nil || m.MetricValues[0].MetricValueFloat != 159 {
		t.Fatalf("from a table a minute old: %v, %v; want 159", m, err)
	}
	other := &externalscaler.ScaledObjectRef{Name: "x", ScalerMetadata: map[string]string{scaler.KeyFunction: "g"}}
	if _, err := s.IsActive(ctx, other); err == nil || !strings.Contains(err.Error(), "the models ran") {
		t.Fatalf("a function the table lacks: %v, want the models asked", err)
	}
	// while the first table is decided, a call the table cannot answer is
	// refused ResourceExhausted (the overload answer), every method alike, and the models are not
	// asked; one it can answer is answered
	s.Pending = func() bool { return true }
	for name, call := range map[string]func() error{
		"IsActive": func() error { _, err := s.IsActive(ctx, other); return err },
		"GetMetrics": func() error {
			_, err := s.GetMetrics(ctx, &externalscaler.GetMetricsRequest{ScaledObjectRef: other})
			return err
		},
		"StreamIsActive": func() error { return s.StreamIsActive(other, &stream{ctx: ctx}) },
	} {
		if err := call(); status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "first minute's decision table") {
			t.Fatalf("%s while the first table is decided: %v, want ResourceExhausted", name, err)
		}
	}
	if active, err := s.IsActive(ctx, ref); err != nil || !active.Result {
		t.Fatalf("a function the table holds while it is pending: %v, %v", active.GetResult(), err)
	}
	s.Pending = func() bool { return false }
	if _, err := s.IsActive(ctx, other); err == nil || !strings.Contains(err.Error(), "the models ran") {
		t.Fatalf("no longer pending: %v, want the models asked", err)
	}
}

// stream is a StreamIsActive stream that takes every answer.
type stream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *stream) Context() context.Context                    { return s.ctx }
func (s *stream) Send(*externalscaler.IsActiveResponse) error { return nil }

// quantileModels answers the median, and with trees the 0.9 and 0.99
// quantiles, counting its runs.
type quantileModels struct {
	trees bool
	runs  *int
}

func (q quantileModels) Predict(_ context.Context, reqs []forecast.Request, _ forecast.Mode, outs forecast.Outputs) ([]forecast.Result, error) {
	*q.runs++
	r := forecast.Result{ID: reqs[0].ID, PInvoke: float32s(ramp(0)), Forecast: float32s(ramp(100)), Median: float32s(ramp(50))}
	if q.trees && outs&forecast.Quantiles != 0 {
		r.Quantiles = []forecast.QuantileCounts{{Q: 0.9, Counts: float32s(ramp(200))}, {Q: 0.99, Counts: float32s(ramp(300))}}
	}
	return []forecast.Result{r}, nil
}

// TestDemandAtTheTriggersQuantile: GetMetrics' demand is the largest of
// the trigger's quantile over its demand minutes: 0.9 by default, "mean"
// the expected count, any quantile the set answers or that lies between
// two it answers (interpolated), from the minute's table where it keeps
// that very quantile (decide.quantiles), computed where it does not; one
// beyond the set's levels is FailedPrecondition naming those it answers,
// and the default falls back to the expected count where the set has no
// 0.9 quantile.
func TestDemandAtTheTriggersQuantile(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 30, 0, time.UTC)
	store := history.New(1440, 10)
	store.Observe([]history.Observation{{ID: "f", Minute: now.Unix()/60 - 1, Count: 3}})
	cases := []struct {
		quantile string // "": not set
		trees    bool   // the set serves 0.9 and 0.99 (the table keeps 0.9)
		demand   float64
		runs     int // model runs: 0 when the table answers
		code     codes.Code
	}{
		{"", true, 204, 0, codes.OK},
		{"0.9", true, 204, 0, codes.OK},
		{"mean", true, 104, 0, codes.OK},
		{"0.99", true, 304, 1, codes.OK},
		{"0.5", true, 54, 1, codes.OK},
		{"", false, 104, 1, codes.OK},
		{"0.9", false, 0, 1, codes.FailedPrecondition},
		{"0.945", true, 254, 1, codes.OK}, // halfway from 0.9 to 0.99, computed: the table keeps 0.9 alone
		{"0.995", true, 0, 1, codes.FailedPrecondition},
		{"1", true, 0, 0, codes.InvalidArgument},
		{"0.2", true, 0, 0, codes.InvalidArgument},
		{"NaN", true, 0, 0, codes.InvalidArgument},
		{"median", true, 0, 0, codes.InvalidArgument},
	}
	for _, c := range cases {
		runs := 0
		table := decide.Entry{PInvoke: float32s(ramp(0)), Forecast: float32s(ramp(100))}
		if c.trees {
			table.Quantiles = []forecast.QuantileCounts{{Q: 0.9, Counts: float32s(ramp(200))}}
		}
		s := &scaler.Server{Predictor: quantileModels{trees: c.trees, runs: &runs}, History: store,
			DefaultThreshold: func() float64 { return 0.25 }, Now: func() time.Time { return now },
			Decisions: func(string, int64) (decide.Entry, bool) { return table, true }}
		md := map[string]string{scaler.KeyFunction: "f", scaler.KeyDemandMinutes: "5"}
		if c.quantile != "" {
			md[scaler.KeyQuantile] = c.quantile
		}
		m, err := s.GetMetrics(context.Background(), &externalscaler.GetMetricsRequest{ScaledObjectRef: &externalscaler.ScaledObjectRef{Name: "x", ScalerMetadata: md}})
		if status.Code(err) != c.code {
			t.Fatalf("quantile %q: %v, want %v", c.quantile, err, c.code)
		}
		if c.code == codes.FailedPrecondition && !strings.Contains(err.Error(), "[0.5") {
			t.Errorf("quantile %q: %v, want the served quantiles named", c.quantile, err)
		}
		if err == nil && m.MetricValues[0].MetricValueFloat != c.demand {
			t.Errorf("quantile %q: demand %v, want %v", c.quantile, m.MetricValues[0].MetricValueFloat, c.demand)
		}
		if runs != c.runs {
			t.Errorf("quantile %q (trees %v): %d model runs, want %d", c.quantile, c.trees, runs, c.runs)
		}
	}
	// a table keeping 0.9 and 0.99 does not answer 0.945 by interpolating
	// them: the set may serve a level between them
	runs := 0
	table := decide.Entry{PInvoke: float32s(ramp(0)), Forecast: float32s(ramp(100)),
		Quantiles: []forecast.QuantileCounts{{Q: 0.9, Counts: float32s(ramp(200))}, {Q: 0.99, Counts: float32s(ramp(300))}}}
	s := &scaler.Server{Predictor: quantileModels{trees: true, runs: &runs}, History: store,
		DefaultThreshold: func() float64 { return 0.25 }, Now: func() time.Time { return now },
		Decisions: func(string, int64) (decide.Entry, bool) { return table, true }}
	md := map[string]string{scaler.KeyFunction: "f", scaler.KeyDemandMinutes: "5", scaler.KeyQuantile: "0.945"}
	if _, err := s.GetMetrics(context.Background(), &externalscaler.GetMetricsRequest{ScaledObjectRef: &externalscaler.ScaledObjectRef{Name: "x", ScalerMetadata: md}}); err != nil || runs != 1 {
		t.Fatalf("0.945 with 0.9 and 0.99 kept: %v, %d model runs, want it computed (1)", err, runs)
	}
}

// TestAnotherReplicasFunctionIsNamedNotDecided: a replica asked about a
// function another one owns answers FailedPrecondition naming the owner.
func TestAnotherReplicasFunctionIsNamedNotDecided(t *testing.T) {
	sh := shard.Shard{Index: 0, Replicas: 4}
	var foreign string
	for i := 0; foreign == ""; i++ {
		if id := fmt.Sprintf("f%d", i); !sh.Owns(id) {
			foreign = id
		}
	}
	s := &scaler.Server{Predictor: answer{err: errors.New("the models ran")}, History: history.New(1440, 10), Owns: sh.Check,
		DefaultThreshold: func() float64 { return 0.25 }}
	_, err := s.IsActive(context.Background(), &externalscaler.ScaledObjectRef{Name: "x", ScalerMetadata: map[string]string{scaler.KeyFunction: foreign}})
	want := fmt.Sprintf("belongs to replica %d", shard.Owner(foreign, 4))
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), want) {
		t.Fatalf("another replica's function: %v, want FailedPrecondition naming it (%s)", err, want)
	}
}

// TestDemandFloorAtTheLastMinute: with metadata floor "lastMinute" the
// demand is at least the last minute's observed count, from the table
// and from the models alike; without it, or "none", the forecast's
// alone; any other value is InvalidArgument, and a function the history
// never saw is NotFound even where a table holds it.
func TestDemandFloorAtTheLastMinute(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 30, 0, time.UTC)
	minute := now.Unix() / 60
	store := history.New(1440, 10)
	store.Observe([]history.Observation{
		{ID: "burst", Minute: minute - 2, Count: 1}, {ID: "burst", Minute: minute - 1, Count: 500},
		{ID: "quiet", Minute: minute - 1, Count: 3}, {ID: "earlier", Minute: minute - 2, Count: 900},
	})
	cases := []struct {
		function, floor, quantile string
		demand                    float64
		code                      codes.Code
	}{
		{"burst", "", "", 204, codes.OK},
		{"burst", scaler.FloorNone, "", 204, codes.OK},
		{"burst", scaler.FloorLastMinute, "", 500, codes.OK},      // the table's q0.9, floored
		{"burst", scaler.FloorLastMinute, "0.99", 500, codes.OK},  // the models' q0.99, floored
		{"quiet", scaler.FloorLastMinute, "", 204, codes.OK},      // 3 is under the forecast
		{"quiet", scaler.FloorLastMinute, "0.99", 304, codes.OK},  // likewise from the models
		{"earlier", scaler.FloorLastMinute, "", 204, codes.OK},    // 900 came two minutes ago: not the last
		{"unseen", scaler.FloorLastMinute, "", 0, codes.NotFound}, // the table holds it, the history does not
		{"burst", "LastMinute", "", 0, codes.InvalidArgument},
		{"burst", "true", "", 0, codes.InvalidArgument},
	}
	for _, c := range cases {
		runs := 0
		table := decide.Entry{PInvoke: float32s(ramp(0)), Forecast: float32s(ramp(100)),
			Quantiles: []forecast.QuantileCounts{{Q: 0.9, Counts: float32s(ramp(200))}}}
		s := &scaler.Server{Predictor: quantileModels{trees: true, runs: &runs}, History: store,
			DefaultThreshold: func() float64 { return 0.25 }, Now: func() time.Time { return now },
			Decisions: func(string, int64) (decide.Entry, bool) { return table, true }}
		md := map[string]string{scaler.KeyFunction: c.function, scaler.KeyDemandMinutes: "5"}
		if c.floor != "" {
			md[scaler.KeyFloor] = c.floor
		}
		if c.quantile != "" {
			md[scaler.KeyQuantile] = c.quantile
		}
		ref := &externalscaler.ScaledObjectRef{Name: "x", ScalerMetadata: md}
		m, err := s.GetMetrics(context.Background(), &externalscaler.GetMetricsRequest{ScaledObjectRef: ref})
		if status.Code(err) != c.code {
			t.Fatalf("%s, floor %q, quantile %q: %v, want %v", c.function, c.floor, c.quantile, err, c.code)
		}
		if err == nil && m.MetricValues[0].MetricValueFloat != c.demand {
			t.Errorf("%s, floor %q, quantile %q: demand %v, want %v", c.function, c.floor, c.quantile, m.MetricValues[0].MetricValueFloat, c.demand)
		}
		// the floor sizes the demand, not the activation
		if c.code == codes.OK {
			if a, err := s.IsActive(context.Background(), ref); err != nil || a.Result != (ramp(0)[0] >= 0.25) {
				t.Errorf("%s, floor %q: active %v, %v", c.function, c.floor, a.GetResult(), err)
			}
		}
	}
}
