package decide_test

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mesp-project/mesp/decide"
	"github.com/mesp-project/mesp/forecast"
	"github.com/mesp-project/mesp/history"
	"github.com/mesp-project/mesp/internal/fixture"
	"github.com/mesp-project/mesp/internal/servedset"
)

// countingPredictor counts the functions it is asked about (the loop asks
// from several workers at once) and the nice values of the threads that
// ask.
type countingPredictor struct {
	decide.Predictor
	mu                          sync.Mutex
	functions, calls, fromTable int
	nice                        map[int]int
}

func (c *countingPredictor) Predict(ctx context.Context, reqs []forecast.Request, mode forecast.Mode, outs forecast.Outputs) ([]forecast.Result, error) {
	nice, ok := threadNice()
	c.mu.Lock()
	c.functions += len(reqs)
	c.calls++
	if decide.FromTable(ctx) {
		c.fromTable++
	}
	if ok {
		if c.nice == nil {
			c.nice = map[int]int{}
		}
		c.nice[nice]++
	}
	c.mu.Unlock()
	return c.Predictor.Predict(ctx, reqs, mode, outs)
}

// TestTableEqualsWhatEachFunctionIsAnswered: the table for a minute holds,
// function by function, what POST /v1/prewarm answers for the same day
// (the served path, routed, counts and p_invoke), computed in batches; a
// function whose history the models refuse is skipped without failing
// the minute, and the table answers only for its minute.
func TestTableEqualsWhatEachFunctionIsAnswered(t *testing.T) {
	fc := servedset.Open(t)
	rows := fixture.Rows(t)[:40]
	store := history.New(1440, 100)
	const minute = int64(29_000_000) // the first minute ahead
	var obs []history.Observation
	for _, f := range rows {
		for m, v := range f.Counts {
			obs = append(obs, history.Observation{ID: f.ID, Minute: minute - 1440 + int64(m), Count: v})
		}
	}
	obs = append(obs, history.Observation{ID: "short", Minute: minute - 1, Count: 3})
	if _, _, err := store.Observe(obs); err != nil {
		t.Fatal(err)
	}
	p := &countingPredictor{Predictor: fc}
	// three batches at once, each on a thread of its own at nice 5: what
	// each worker decides lands in the one table
	loop := &decide.Loop{Predictor: p, History: store, Batch: 16, Workers: 3, Nice: 5, Quantiles: []float64{0.99, 0.5, 0.93, 0.9, 0.93}}
	if err := loop.Register(prometheus.NewRegistry()); err != nil {
		t.Fatal(err)
	}
	if loop.Current() != nil {
		t.Fatal("a table before the first minute")
	}
	if err := loop.Decide(context.Background(), minute); err != nil {
		t.Fatal(err)
	}
	tab := loop.Current()
	if tab.Minute != minute || len(tab.Entries) != len(rows) || tab.Skipped != 1 || len(tab.IDs) != len(rows) || !slices.IsSorted(tab.IDs) {
		t.Fatalf("table of minute %d: %d entries, %d ids, %d skipped; want %d, %d entries, 1 skipped (the short history)",
			tab.Minute, len(tab.Entries), len(tab.IDs), tab.Skipped, minute, len(rows))
	}
	// 41 functions in 3 batches of 16; the batch holding the short
	// history is refused and retried one function at a time
	if p.calls > 3+16 {
		t.Fatalf("%d model calls for 41 functions in batches of 16", p.calls)
	}
	if p.fromTable != p.calls || decide.FromTable(context.Background()) {
		t.Fatalf("%d of %d calls marked as the table's", p.fromTable, p.calls)
	}
	if _, ok := threadNice(); ok && p.nice[5] != p.calls {
		t.Fatalf("the loop asked from threads of nice values %v, want all %d calls at 5", p.nice, p.calls)
	}
	for _, f := range rows {
		counts, _ := store.Window(f.ID, minute)
		want, err := fc.Predict(context.Background(), []forecast.Request{{ID: f.ID, Counts: counts}}, forecast.Routed, forecast.Counts|forecast.PInvoke|forecast.Quantiles)
		if err != nil {
			t.Fatal(err)
		}
		e, ok := loop.Lookup(f.ID, minute)
		if !ok {
			t.Fatalf("%s: not in the table", f.ID)
		}
		// the quantiles the loop keeps, for KEDA's demand, in increasing
		// order and once each: 0.93, between the served 0.9 and 0.95, as a
		// trigger asking it is answered
		var wantQ []forecast.QuantileCounts
		for _, q := range []float64{0.5, 0.9, 0.93, 0.99} {
			c, ok := forecast.QuantileAt(want[0].QuantileSeries(), q)
			if !ok {
				t.Fatalf("%s: the set does not answer %v", f.ID, q)
			}
			wantQ = append(wantQ, forecast.QuantileCounts{Q: q, Counts: c})
		}
		if len(e.Quantiles) != len(wantQ) {
			t.Fatalf("%s: the table holds %d quantiles, the set answers %d", f.ID, len(e.Quantiles), len(wantQ))
		}
		for k, q := range wantQ {
			for h := range q.Counts {
				if e.Quantiles[k].Q != q.Q || !near(e.Quantiles[k].Counts[h], q.Counts[h]) {
					t.Fatalf("%s: quantile %v minute %d: the table has %v, the function's own call %v", f.ID, q.Q, h+1, e.Quantiles[k].Counts[h], q.Counts[h])
				}
			}
		}
		// ONNX Runtime's kernels may round a row differently in a batch
		// of 16 than alone: equal to float32's precision
		for h := range e.PInvoke {
			if !near(e.PInvoke[h], want[0].PInvoke[h]) || !near(e.Forecast[h], want[0].Forecast[h]) {
				t.Fatalf("%s minute %d: the table has p %v forecast %v, the function's own call %v %v",
					f.ID, h+1, e.PInvoke[h], e.Forecast[h], want[0].PInvoke[h], want[0].Forecast[h])
			}
		}
		// a minute later, until that minute's table: what this one forecast
		// for the minutes from then on; never for a minute before it or
		// past MaxAge (2)
		next, ok := loop.Lookup(f.ID, minute+1)
		if !ok || !slices.Equal(next.PInvoke, e.PInvoke[1:]) || !slices.Equal(next.Forecast, e.Forecast[1:]) {
			t.Fatalf("%s: a minute later the table answers %v, want its own forecast from minute 2 on", f.ID, ok)
		}
		for k, q := range e.Quantiles {
			if next.Quantiles[k].Q != q.Q || !slices.Equal(next.Quantiles[k].Counts, q.Counts[1:]) {
				t.Fatalf("%s: a minute later quantile %v is not the table's from minute 2 on", f.ID, q.Q)
			}
		}
		for _, m := range []int64{minute - 1, minute + 3} {
			if _, ok := loop.Lookup(f.ID, m); ok {
				t.Fatalf("the table of minute %d answered for minute %d", minute, m)
			}
		}
	}
	if _, ok := loop.Lookup("short", minute); ok {
		t.Fatal("a refused history is in the table")
	}

	// a function that arrives after its minute was decided joins that
	// minute's table; the others' entries stay as they were
	var late []history.Observation
	for m, v := range rows[0].Counts {
		late = append(late, history.Observation{ID: "late", Minute: minute - 1440 + int64(m), Count: v})
	}
	store.Observe(late)
	before, calls := loop.Current(), p.functions
	if err := loop.DecideNew(context.Background()); err != nil {
		t.Fatal(err)
	}
	after := loop.Current()
	if after.Minute != minute || len(after.Entries) != len(rows)+1 || !slices.IsSorted(after.IDs) || len(after.IDs) != len(rows)+1 {
		t.Fatalf("after a late function: minute %d, %d entries, %d ids", after.Minute, len(after.Entries), len(after.IDs))
	}
	if e, ok := loop.Lookup("late", minute); !ok || !slices.Equal(e.PInvoke, after.Entries["late"].PInvoke) {
		t.Fatal("the late function is not answered")
	}
	// the late one and the short one tried again: their batch of 2 is
	// refused for the short history and retried one by one
	if got := p.functions - calls; got > 4 {
		t.Fatalf("adding one function ran the models on %d", got)
	}
	if !slices.Equal(after.Entries[rows[1].ID].Forecast, before.Entries[rows[1].ID].Forecast) {
		t.Fatal("an entry changed")
	}
}

// TestRunDecidesEachMinuteAfterItsDeadline: the loop decides the current
// minute once the deadline after its boundary has passed, not before.
func TestRunDecidesEachMinuteAfterItsDeadline(t *testing.T) {
	if time.Now().Second() > 55 {
		time.Sleep(6 * time.Second) // into the next minute
	}
	now := time.Now()
	minute := now.Unix() / 60
	boundary := time.Unix(minute*60, 0)
	store := history.New(1440, 10)
	store.Observe([]history.Observation{{ID: "f", Minute: minute - 1, Count: 1}})
	// the deadline a second and a half from now: not yet passed
	loop := &decide.Loop{Predictor: stubPredictor{}, History: store, Deadline: now.Sub(boundary) + 1500*time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	go loop.Run(ctx)
	for loop.Current() == nil && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	tab := loop.Current()
	if tab == nil {
		t.Fatal("no minute decided")
	}
	if due := boundary.Add(loop.Deadline); tab.Minute != minute || tab.Decided.Before(due) {
		t.Fatalf("minute %d decided at %v; want minute %d at or after its deadline %v", tab.Minute, tab.Decided, minute, due)
	}
	if _, ok := loop.Lookup("f", tab.Minute); !ok {
		t.Fatal("the function is not in the table")
	}
}

func near(a, b float32) bool {
	d := float64(a) - float64(b)
	return d <= 1e-5*max(1, float64(b)) && -d <= 1e-5*max(1, float64(b))
}

// stubPredictor answers p_invoke 0.5 and a count of 1 for every minute.
type stubPredictor struct{}

func (stubPredictor) Predict(_ context.Context, reqs []forecast.Request, _ forecast.Mode, _ forecast.Outputs) ([]forecast.Result, error) {
	out := make([]forecast.Result, len(reqs))
	for i := range out {
		out[i].PInvoke, out[i].Forecast = make([]float32, 60), make([]float32, 60)
		for h := range 60 {
			out[i].PInvoke[h], out[i].Forecast[h] = 0.5, 1
		}
	}
	return out, nil
}

// TestFunctionsJoinWithEnoughHistoryAndLeaveWhenGone: a function that
// appears mid-day is decided from the first minute its history is as long
// as the shortest pattern the models serve (skipped before, without
// failing the minute); one whose history is no longer current (Fresh: it
// left Prometheus' answer) is not decided and is counted as stale, and is
// decided again once current.
func TestFunctionsJoinWithEnoughHistoryAndLeaveWhenGone(t *testing.T) {
	fc := servedset.Open(t)
	cat, _ := fc.Catalog()
	shortest := int64(cat.MaxInputLen)
	rows := fixture.Rows(t)[:4]
	store := history.New(1440, 100)
	const day = int64(29_000_000) // the day's first minute
	var obs []history.Observation
	for _, f := range rows[:3] {
		for m, v := range f.Counts {
			obs = append(obs, history.Observation{ID: f.ID, Minute: day + int64(m), Count: v})
		}
	}
	// "new" appears at minute 1000 of the day, with the fourth row's minutes from then on
	appears := day + 1000
	for m := appears; m < day+1440; m++ {
		obs = append(obs, history.Observation{ID: "new", Minute: m, Count: rows[3].Counts[m-day]})
	}
	if _, _, err := store.Observe(obs); err != nil {
		t.Fatal(err)
	}
	gone := map[string]bool{rows[2].ID: true}
	loop := &decide.Loop{Predictor: fc, History: store, Batch: 8, Fresh: func(id string) error {
		if gone[id] {
			return errors.New("no sample since minute 900")
		}
		return nil
	}}
	reg := prometheus.NewRegistry()
	if err := loop.Register(reg); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		minute   int64
		decided  []string
		skipped  int
		stale    int
		goneBack bool
	}{
		{appears + shortest - 1, []string{rows[0].ID, rows[1].ID}, 1, 1, false}, // "new" one minute short
		{appears + shortest, []string{rows[0].ID, rows[1].ID, "new"}, 0, 1, false},
		{appears + shortest + 1, []string{rows[0].ID, rows[1].ID, rows[2].ID, "new"}, 0, 0, true},
	} {
		gone[rows[2].ID] = !c.goneBack
		if err := loop.Decide(context.Background(), c.minute); err != nil {
			t.Fatal(err)
		}
		tab := loop.Current()
		want := slices.Sorted(slices.Values(c.decided))
		if !slices.Equal(tab.IDs, want) || tab.Skipped != c.skipped || tab.Stale != c.stale {
			t.Fatalf("minute %d (new has %d minutes): decided %v, %d skipped, %d stale; want %v, %d, %d",
				c.minute-appears, c.minute-appears, tab.IDs, tab.Skipped, tab.Stale, want, c.skipped, c.stale)
		}
		if got := gaugeValue(t, reg, "mesp_decisions_stale_functions"); got != float64(c.stale) {
			t.Fatalf("mesp_decisions_stale_functions %v, want %d", got, c.stale)
		}
	}
}

// gaugeValue is the value of the gauge named name in reg.
func gaugeValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestALateMinuteIsDecidedAndSaysSo: at the deadline a function whose
// last minutes have not arrived is decided all the same (they count as no
// invocation) and its entry says how many were missing; the table counts
// it as late, and a later lookup adds the minutes since.
func TestALateMinuteIsDecidedAndSaysSo(t *testing.T) {
	const minute = int64(29_000_000)
	store := history.New(1440, 10)
	store.Observe([]history.Observation{
		{ID: "complete", Minute: minute - 2, Count: 1}, {ID: "complete", Minute: minute - 1, Count: 2},
		{ID: "late", Minute: minute - 3, Count: 4},
	})
	loop := &decide.Loop{Predictor: stubPredictor{}, History: store}
	reg := prometheus.NewRegistry()
	if err := loop.Register(reg); err != nil {
		t.Fatal(err)
	}
	if err := loop.Decide(context.Background(), minute); err != nil {
		t.Fatal(err)
	}
	tab := loop.Current()
	if len(tab.Entries) != 2 || tab.Entries["complete"].Missing != 0 || tab.Entries["late"].Missing != 2 || tab.Late != 1 {
		t.Fatalf("entries %+v, late %d; want both decided, late missing 2 minutes", tab.Entries, tab.Late)
	}
	if got := gaugeValue(t, reg, "mesp_decisions_late_functions"); got != 1 {
		t.Fatalf("mesp_decisions_late_functions %v, want 1", got)
	}
	if e, ok := loop.Lookup("late", minute+1); !ok || e.Missing != 3 {
		t.Fatalf("a minute later: %+v %v, want 3 minutes missing", e, ok)
	}
}

// TestLoopsDecidingAtOnceGiveBackTheirProcessors: each loop deciding with
// a nice value adds Go processors for its workers while it decides; two
// loops at once, finishing in either order, leave GOMAXPROCS as it was.
func TestLoopsDecidingAtOnceGiveBackTheirProcessors(t *testing.T) {
	fc := servedset.Open(t)
	rows := fixture.Rows(t)[:8]
	store := history.New(1440, 100)
	const minute = int64(29_000_000)
	var obs []history.Observation
	for _, f := range rows {
		for m, v := range f.Counts {
			obs = append(obs, history.Observation{ID: f.ID, Minute: minute - 1440 + int64(m), Count: v})
		}
	}
	if _, _, err := store.Observe(obs); err != nil {
		t.Fatal(err)
	}
	before := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	for k := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			loop := &decide.Loop{Predictor: fc, History: store, Batch: 2, Workers: 1 + k, Nice: 3}
			if err := loop.Decide(context.Background(), minute); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if after := runtime.GOMAXPROCS(0); after != before {
		t.Fatalf("GOMAXPROCS %d after two loops decided, %d before", after, before)
	}
}

// gatedPredictor is stubPredictor that first waits for its gate, telling
// entered that it does.
type gatedPredictor struct {
	entered chan struct{}
	mu      sync.Mutex
	gate    chan struct{}
}

func (g *gatedPredictor) Predict(ctx context.Context, reqs []forecast.Request, mode forecast.Mode, outs forecast.Outputs) ([]forecast.Result, error) {
	g.mu.Lock()
	gate := g.gate
	g.mu.Unlock()
	select {
	case g.entered <- struct{}{}:
	default:
	}
	<-gate
	return stubPredictor{}.Predict(ctx, reqs, mode, outs)
}

// TestFirstPendingOnlyWhileTheFirstTableIsDecided: FirstPending is false
// before any minute is decided, true while the first is, and false from
// then on, while later minutes are decided too (the previous table
// answers meanwhile).
func TestFirstPendingOnlyWhileTheFirstTableIsDecided(t *testing.T) {
	minute := time.Now().Unix() / 60
	store := history.New(1440, 10)
	store.Observe([]history.Observation{{ID: "f", Minute: minute - 1, Count: 1}})
	p := &gatedPredictor{entered: make(chan struct{}, 1), gate: make(chan struct{})}
	loop := &decide.Loop{Predictor: p, History: store}
	if loop.FirstPending() {
		t.Fatal("pending before any minute is decided")
	}
	ctx := context.Background()
	for k, wantPending := range []bool{true, false} {
		done := make(chan error)
		go func() { done <- loop.Decide(ctx, minute+int64(k)) }()
		<-p.entered
		if got := loop.FirstPending(); got != wantPending {
			t.Fatalf("minute %d being decided: pending %v, want %v", k+1, got, wantPending)
		}
		p.mu.Lock()
		close(p.gate)
		p.mu.Unlock()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if loop.FirstPending() || loop.Current() == nil {
			t.Fatalf("minute %d decided: pending %v, table %v", k+1, loop.FirstPending(), loop.Current())
		}
		p.mu.Lock()
		p.gate = make(chan struct{})
		p.mu.Unlock()
	}
}
