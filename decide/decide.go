// Package decide computes every held function's pre-warm answer once per
// minute and keeps the table: the answer for a minute can only change when
// a new minute arrives, yet KEDA asks about each ScaledObject every
// polling interval and at each HPA sync, and a platform's control loop
// asks about every function. Once a minute is complete (a deadline after
// its boundary), the Loop runs the served models over every function's
// day in large batches through the batched path; IsActive, GetMetrics and
// GET /v1/decisions answer from the table, and only a request with its
// own counts computes.
package decide

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mesp-project/mesp/forecast"
	"github.com/mesp-project/mesp/history"
)

// Predictor answers p_invoke and expected counts for patterns, routed as
// served (forecast.Forecaster).
type Predictor interface {
	Predict(ctx context.Context, reqs []forecast.Request, mode forecast.Mode, outs forecast.Outputs) ([]forecast.Result, error)
}

// UpToPredictor is a Predictor that can answer the quantile levels up to
// one alone (forecast.Forecaster.PredictUpTo): the table then runs only
// the quantile graphs its kept levels read.
type UpToPredictor interface {
	PredictUpTo(ctx context.Context, reqs []forecast.Request, mode forecast.Mode, outs forecast.Outputs, upTo float64) ([]forecast.Result, error)
}

// PredictUpTo asks p for outs, routed, and for the quantile levels up to
// upTo (none when upTo <= 0): those alone where p can answer them alone
// (UpToPredictor, so that the quantile graphs no such level reads do not
// run), else every level.
func PredictUpTo(ctx context.Context, p Predictor, reqs []forecast.Request, outs forecast.Outputs, upTo float64) ([]forecast.Result, error) {
	if upTo <= 0 {
		return p.Predict(ctx, reqs, forecast.Routed, outs)
	}
	if up, ok := p.(UpToPredictor); ok {
		return up.PredictUpTo(ctx, reqs, forecast.Routed, outs|forecast.Quantiles, upTo)
	}
	return p.Predict(ctx, reqs, forecast.Routed, outs|forecast.Quantiles)
}

// Entry is one function's answer for the minute its table was computed
// for: p_invoke and the expected count of each of the next 60 minutes,
// from the day before that minute.
type Entry struct {
	PInvoke  []float32
	Forecast []float32
	// Quantiles are the quantiles of each minute's count the loop keeps
	// (Loop.Quantiles), in increasing order: KEDA's demand at a trigger's
	// quantile.
	Quantiles []forecast.QuantileCounts
	// Missing is how many of the minutes just before the table's minute
	// the history did not hold when the minute was decided (a late scrape
	// or push; they counted as no invocation); 0: complete.
	Missing int
}

// Table is every function's answer for one minute (a Unix minute: the
// first minute ahead; the history ends just before it).
type Table struct {
	Minute  int64
	Entries map[string]Entry
	// IDs are Entries' functions in order (for paging).
	IDs []string
	// Decided is when the table was finished, Took how long it took,
	// Skipped the functions whose history the models refused (too short,
	// invalid) and Stale those whose history is not current (Loop.Fresh),
	// both left out of the table; Late the functions decided without
	// their last minute (Entry.Missing).
	Decided time.Time
	Took    time.Duration
	Skipped int
	Stale   int
	Late    int
}

// Loop keeps the table current.
type Loop struct {
	Predictor Predictor
	History   *history.Store
	// Batch is how many functions one Predict call takes; 0: 256.
	Batch int
	// Workers is how many batches are predicted at once; 0: one per core
	// (GOMAXPROCS). A batch's models run partly one after the other, so
	// batches side by side keep the cores busy.
	Workers int
	// Nice, when positive, is the scheduling nice value of the threads
	// that decide (Linux): each worker routes and runs its batches on one
	// thread of its own at that lower priority (forecast.Inline), so that
	// the calls answered meanwhile (KEDA's from the table, requests with
	// their own counts) are not queued behind the table's work on a busy
	// machine; while a minute is decided the process has a Go processor
	// (GOMAXPROCS) more per worker, so that a worker running Go code
	// (routing) never holds one the calls need and the kernel, at those
	// priorities, shares the cores. 0: the server's own priority.
	Nice int
	// Deadline is how long after a minute's boundary the minute is taken
	// as complete and decided (pushes and Prometheus' scrape of the
	// minute arrive by then); 0: 10 s.
	Deadline time.Duration
	// MaxAge is how many minutes a table may answer after its own: until
	// the current minute's table is in service (Deadline after the
	// boundary plus the time deciding takes), a call gets the previous
	// table's forecast for the minutes from now on; 0: 2.
	MaxAge int
	Now    func() time.Time
	Log    *slog.Logger
	// Fresh, when set, says whether a function's history is current
	// (promread.Reader.Fresh); a function whose history is not (one that
	// left Prometheus' answer, or whose reads fail) is not decided: its
	// minutes would be zeros nobody measured.
	Fresh func(function string) error
	// Quantiles are the quantile levels the table keeps, in increasing
	// order whatever theirs (0.5: the median; none: no quantile is
	// computed); a level between two the set serves is kept interpolated
	// (forecast.QuantileAt), one beyond them is not kept.
	Quantiles []float64

	table    atomic.Pointer[Table]
	deciding atomic.Int32 // whole minutes being decided now
	m        *loopMetrics
	warnOnce sync.Once
}

type loopMetrics struct {
	minute, took, functions, stale, late prometheus.Gauge
	skipped, failures                    prometheus.Counter
}

// Register puts the table's health on reg: the minute it holds, how long
// the last minute took to decide, its functions, and the functions
// skipped and minutes that failed.
func (l *Loop) Register(reg prometheus.Registerer) error {
	l.init()
	for _, c := range []prometheus.Collector{l.m.minute, l.m.took, l.m.functions, l.m.stale, l.m.late, l.m.skipped, l.m.failures} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("decide: %w", err)
		}
	}
	return nil
}

func (l *Loop) init() {
	if l.m != nil {
		return
	}
	l.m = &loopMetrics{
		minute: prometheus.NewGauge(prometheus.GaugeOpts{Name: "mesp_decisions_minute_timestamp_seconds",
			Help: "Unix time of the minute the decision table answers for (its age: time() minus this)."}),
		took: prometheus.NewGauge(prometheus.GaugeOpts{Name: "mesp_decisions_duration_seconds",
			Help: "How long deciding the last minute took."}),
		functions: prometheus.NewGauge(prometheus.GaugeOpts{Name: "mesp_decisions_functions",
			Help: "Functions in the decision table."}),
		stale: prometheus.NewGauge(prometheus.GaugeOpts{Name: "mesp_decisions_stale_functions",
			Help: "Functions held but not decided in the last minute's table because their history is not current (gone from Prometheus' answer, or its reads failing)."}),
		late: prometheus.NewGauge(prometheus.GaugeOpts{Name: "mesp_decisions_late_functions",
			Help: "Functions in the last minute's table decided without their last minute (it had not arrived by the deadline: it counted as no invocation)."}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{Name: "mesp_decisions_skipped_total",
			Help: "Functions left out of a minute's table because the models refused their history."}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "mesp_decisions_failures_total",
			Help: "Minutes whose table could not be computed (the previous one is kept)."}),
	}
}

func (l *Loop) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

// Current is the table, nil before the first minute is decided.
func (l *Loop) Current() *Table { return l.table.Load() }

// FirstPending says the first table is being decided and none is in
// service yet: a call that computes its own answer meanwhile takes the
// cores the whole fleet's table needs (at 100,000 functions and KEDA's
// 6,667 calls a second, the first minute took 197 s and each call up to
// 165 s; with those calls refused, 37.6 s).
func (l *Loop) FirstPending() bool { return l.table.Load() == nil && l.deciding.Load() > 0 }

// Lookup is the function's entry for minute: the table's own, or, for a
// minute up to MaxAge after the table's, what the table forecast for the
// minutes from minute on (shorter by the minutes since). ok is false for
// a minute before the table's or older than MaxAge, and for a function not
// in it.
func (l *Loop) Lookup(function string, minute int64) (Entry, bool) {
	t := l.table.Load()
	maxAge := int64(l.MaxAge)
	if maxAge <= 0 {
		maxAge = 2
	}
	if t == nil || minute < t.Minute || minute-t.Minute > maxAge {
		return Entry{}, false
	}
	e, ok := t.Entries[function]
	if !ok {
		return Entry{}, false
	}
	d := minute - t.Minute
	// the minutes since the table's are not in its answer either
	qs := make([]forecast.QuantileCounts, len(e.Quantiles))
	for k, q := range e.Quantiles {
		qs[k] = forecast.QuantileCounts{Q: q.Q, Counts: q.Counts[d:]}
	}
	return Entry{PInvoke: e.PInvoke[d:], Forecast: e.Forecast[d:], Quantiles: qs, Missing: e.Missing + int(d)}, true
}

// Decide computes the table for minute from every held function's day
// before it and puts it in service. A batch the models refuse is decided
// function by function, so that one bad history leaves out only itself.
func (l *Loop) Decide(ctx context.Context, minute int64) error {
	return l.decide(ctx, minute, nil)
}

// DecideNew adds to the table in service the functions the store holds
// and it lacks (a function pushed or read for the first time after its
// minute was decided: the Prometheus backfill at start, a new function),
// for the table's own minute.
func (l *Loop) DecideNew(ctx context.Context) error {
	t := l.table.Load()
	if t == nil {
		return nil
	}
	return l.decide(ctx, t.Minute, t)
}

// decide computes the table for minute, over every function, or over
// those base lacks (then base's entries are kept).
func (l *Loop) decide(ctx context.Context, minute int64, base *Table) error {
	l.init()
	if base == nil {
		l.deciding.Add(1)
		defer l.deciding.Add(-1)
	}
	start := time.Now()
	ids := l.History.IDs()
	slices.Sort(ids)
	batch := l.Batch
	if batch <= 0 {
		batch = 256
	}
	t := &Table{Minute: minute, Entries: make(map[string]Entry, len(ids))}
	if l.Fresh != nil {
		held := len(ids)
		ids = slices.DeleteFunc(ids, func(id string) bool { return l.Fresh(id) != nil })
		t.Stale = held - len(ids)
	}
	if base != nil {
		ids = slices.DeleteFunc(ids, func(id string) bool { _, ok := base.Entries[id]; return ok })
		if len(ids) <= base.Skipped {
			return nil // nothing new (the skipped are skipped again)
		}
	}
	if err := l.decideAll(ctx, minute, ids, batch, t); err != nil {
		l.m.failures.Inc()
		return fmt.Errorf("decide: minute %d: %w", minute, err)
	}
	if base != nil {
		for id, e := range base.Entries {
			t.Entries[id] = e
		}
		t.Late += base.Late
		t.IDs = append(t.IDs, base.IDs...)
		slices.Sort(t.IDs)
	}
	t.Decided, t.Took = time.Now(), time.Since(start)
	if base != nil {
		t.Took += base.Took // the minute's whole cost
	}
	l.table.Store(t)
	l.m.minute.Set(float64(minute * 60))
	l.m.took.Set(t.Took.Seconds())
	l.m.functions.Set(float64(len(t.Entries)))
	l.m.skipped.Add(float64(t.Skipped))
	l.m.stale.Set(float64(t.Stale))
	l.m.late.Set(float64(t.Late))
	return nil
}

// decideAll predicts ids' answers for minute into t, in batches, Workers
// at a time; on errors, the first.
func (l *Loop) decideAll(ctx context.Context, minute int64, ids []string, batch int, t *Table) error {
	workers := l.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = min(workers, (len(ids)+batch-1)/batch)
	if l.Nice > 0 && workers > 0 {
		defer reserveProcs(workers)()
	}
	ctx, cancel := context.WithCancel(context.WithValue(ctx, tableKey{}, true))
	defer cancel()
	var next atomic.Int64 // the next batch's first function
	var mu sync.Mutex     // guards t and first
	var first error
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := ctx
			if l.Nice > 0 {
				// The thread ends with this goroutine (locked, never
				// unlocked): no other goroutine runs at its priority.
				runtime.LockOSThread()
				if err := lowerThreadPriority(l.Nice); err != nil {
					l.warnOnce.Do(func() {
						if l.Log != nil {
							l.Log.Warn("deciding at the server's own priority", "err", err)
						}
					})
				}
				ctx = forecast.Inline(ctx)
			}
			// every batch's windows in one buffer, reused: a minute reads
			// every held function's whole day
			var windows []float64
			for {
				lo := int(next.Add(int64(batch))) - batch
				if lo >= len(ids) || ctx.Err() != nil {
					return
				}
				part := &Table{Entries: map[string]Entry{}}
				var reqs []forecast.Request
				var missing []int
				windows = slices.Grow(windows[:0], batch*l.History.Length())
				for _, id := range ids[lo:min(len(ids), lo+batch)] {
					at := len(windows)
					var err error
					windows, err = l.History.AppendWindow(windows, id, minute)
					newest, _ := l.History.Newest(id)
					if err != nil || len(windows) == at {
						part.Skipped++ // dropped since IDs was read, or nothing before minute
						continue
					}
					reqs = append(reqs, forecast.Request{ID: id, Counts: windows[at:len(windows):len(windows)]})
					missing = append(missing, int(max(0, minute-1-newest)))
				}
				err := l.run(ctx, reqs, missing, part)
				mu.Lock()
				if err != nil && first == nil {
					first = err
					cancel()
				}
				for id, e := range part.Entries {
					t.Entries[id] = e
				}
				t.IDs = append(t.IDs, part.IDs...)
				t.Skipped += part.Skipped
				t.Late += part.Late
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	slices.Sort(t.IDs) // batches finish in any order
	return first
}

// reserved is the Go processors the loops deciding now have added to the
// process's own (GOMAXPROCS before the first of them).
var reserved struct {
	sync.Mutex
	base, extra int
}

// reserveProcs adds n Go processors for a loop's workers until release
// is called; loops deciding at once add theirs to the same base.
func reserveProcs(n int) (release func()) {
	reserved.Lock()
	defer reserved.Unlock()
	if reserved.extra == 0 {
		reserved.base = runtime.GOMAXPROCS(0)
	}
	reserved.extra += n
	runtime.GOMAXPROCS(reserved.base + reserved.extra)
	return func() {
		reserved.Lock()
		defer reserved.Unlock()
		reserved.extra -= n
		runtime.GOMAXPROCS(reserved.base + reserved.extra)
	}
}

// tableKey marks the contexts of the table's model calls (FromTable).
type tableKey struct{}

// FromTable says whether ctx is a decision table's model call (not a
// request's): route hooks see every held function each minute from it.
func FromTable(ctx context.Context) bool {
	v, _ := ctx.Value(tableKey{}).(bool)
	return v
}

// run predicts reqs into t: a batch refused as invalid is retried one
// function at a time, the refused ones skipped.
func (l *Loop) run(ctx context.Context, reqs []forecast.Request, missing []int, t *Table) error {
	if len(reqs) == 0 {
		return nil
	}
	upTo := 0.0
	if len(l.Quantiles) > 0 {
		upTo = slices.Max(l.Quantiles)
	}
	res, err := PredictUpTo(ctx, l.Predictor, reqs, forecast.Counts|forecast.PInvoke, upTo)
	if errors.Is(err, forecast.ErrInvalid) && len(reqs) > 1 {
		for i := range reqs {
			if err := l.run(ctx, reqs[i:i+1], missing[i:i+1], t); err != nil {
				return err
			}
		}
		return nil
	}
	if errors.Is(err, forecast.ErrInvalid) {
		t.Skipped++
		return nil
	}
	if err != nil {
		return err
	}
	// kept in increasing order, as forecast.QuantileAt reads them
	levels := slices.Compact(slices.Sorted(slices.Values(l.Quantiles)))
	for i, r := range res {
		e := Entry{PInvoke: r.PInvoke, Forecast: r.Forecast, Missing: missing[i]}
		if len(r.Median) == len(r.Forecast) {
			series := r.QuantileSeries()
			for _, q := range levels {
				if c, ok := forecast.QuantileAt(series, q); ok {
					e.Quantiles = append(e.Quantiles, forecast.QuantileCounts{Q: q, Counts: c})
				}
			}
		}
		t.Entries[reqs[i].ID] = e
		t.IDs = append(t.IDs, reqs[i].ID)
		if missing[i] > 0 {
			t.Late++
		}
	}
	return nil
}

// Run decides each minute Deadline after its boundary until ctx ends,
// and between minutes adds the functions that arrive (DecideNew, every
// few seconds); a failed minute keeps the previous table (Lookup answers
// from it for MaxAge minutes, then callers compute) and is logged.
func (l *Loop) Run(ctx context.Context) {
	deadline := l.Deadline
	if deadline <= 0 {
		deadline = 10 * time.Second
	}
	for {
		now := l.now()
		minute := now.Unix() / 60
		at := time.Unix(minute*60, 0).Add(deadline)
		if now.Before(at) {
			select {
			case <-ctx.Done():
				return
			case <-time.After(at.Sub(now)):
			}
		}
		if err := l.Decide(ctx, minute); err != nil && ctx.Err() == nil && l.Log != nil {
			l.Log.Warn("deciding the minute failed", "err", err)
		}
		next := time.Unix((minute+1)*60, 0).Add(deadline)
		for {
			wait := min(time.Until(next), newEvery)
			if wait <= 0 {
				break
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			if time.Until(next) > 0 {
				if err := l.DecideNew(ctx); err != nil && ctx.Err() == nil && l.Log != nil {
					l.Log.Warn("deciding new functions failed", "err", err)
				}
			}
		}
	}
}

// newEvery is how often Run looks for functions the table lacks.
const newEvery = 5 * time.Second
