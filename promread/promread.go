// Package promread feeds MESP's per-function history from Prometheus: one
// PromQL query for the fleet (grouped by a label: grouped.go) or one per
// listed function, read with the HTTP API's query_range at a one-minute
// step, backfilled over a whole day on start (a restart loses
// nothing Prometheus holds) and refreshed every minute, just after the
// minute closes.
//
// Prometheus is not trusted: every query has a timeout, a bounded number
// run at once (a hung query holds one worker, not the fleet), a sample
// outside the range asked for or not a count is refused alone (the rest
// of the answer is stored), and each function reads on from its own last
// success. Fresh says, per function, whether its history is current, so
// that a caller (the KEDA scaler) can refuse to decide from minutes that
// were never read instead of taking them for silence.
package promread

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mesp-project/mesp/funcid"
	"github.com/mesp-project/mesp/history"
	"github.com/mesp-project/mesp/trace"
)

// NamePlaceholder is replaced by the function's name in Query.
const NamePlaceholder = "$name"

// ErrStale marks a function whose history the reader has not brought up
// to date: its recent minutes are unknown, not zero.
var ErrStale = errors.New("promread: history not current")

// Reader reads one series per function into a history store.
//
// A sample at time T (a minute boundary) is the count of the minute that
// ended at T, [T-60s, T): what `sum(increase(<counter>{function="$name"}[1m]))`
// evaluates at T. Minutes Prometheus has no sample for are not written.
type Reader struct {
	URL string // Prometheus base URL, e.g. http://prometheus:9090
	// Query is PromQL with $name for the function (one query per
	// function), or without it one query whose series Label names (the
	// fleet's: Grouped).
	Query string
	// Functions are the function names $name takes; for a grouped Query,
	// optional: only these are read.
	Functions []string
	// Label names the function in a grouped query's series; "": function.
	Label string
	// Match, when set, limits a grouped query's functions to those it
	// matches.
	Match *regexp.Regexp
	// Slice is the minutes each grouped query reads (the day's backfill
	// in slices, memory bounded by one); 0: 60.
	Slice int
	// MaxBody bounds a grouped answer's bytes; 0: 256 MiB.
	MaxBody int64
	// Owns, when set, limits a grouped query's functions to this
	// replica's (shard.Shard.Owns).
	Owns   func(function string) bool
	Store  *history.Store
	Client *http.Client
	Log    *slog.Logger
	// Refresh is how many recent minutes each refresh re-reads before a
	// function's last success (late samples); 0: 5.
	Refresh int
	// Timeout bounds each query, body included; 0: 10 s.
	Timeout time.Duration
	// Concurrency is how many queries run at once; 0: 8.
	Concurrency int
	// MaxLag is how far behind a function's last successful read may be
	// before Fresh calls its history stale; 0: 3 minutes.
	MaxLag time.Duration
	// Delay is how long after a minute boundary each refresh starts, so
	// that the closed minute has been scraped; 0: 5 s.
	Delay time.Duration

	once    sync.Once
	m       *readerMetrics
	mu      sync.Mutex
	lastOK  map[string]int64 // per function: the last sample minute read successfully (grouped: the newest minute it had a sample)
	readAt  map[string]time.Time
	started time.Time
	// groupOK, groupAt: a grouped query's last sample minute read and when;
	// backfilled: a grouped read has reached the current minute once
	groupOK    int64
	groupAt    time.Time
	backfilled bool
}

type readerMetrics struct {
	queries     *prometheus.CounterVec
	refused     *prometheus.CounterVec
	duration    prometheus.Histogram
	lastSuccess prometheus.Gauge
	stale       prometheus.Gauge
}

// Register puts the reader's health on reg: queries by result, samples
// refused by reason, query duration, the time of the last successful
// query and the functions whose history is stale.
func (r *Reader) Register(reg prometheus.Registerer) error {
	r.init()
	for _, c := range []prometheus.Collector{r.m.queries, r.m.refused, r.m.duration, r.m.lastSuccess, r.m.stale} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("promread: %w", err)
		}
	}
	return nil
}

func (r *Reader) init() {
	r.once.Do(func() {
		r.lastOK, r.readAt, r.started = map[string]int64{}, map[string]time.Time{}, time.Now()
		r.m = &readerMetrics{
			queries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mesp_promread_queries_total",
				Help: "Prometheus queries by result (ok, error, timeout)."}, []string{"result"}),
			refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mesp_promread_samples_refused_total",
				Help: "Samples not stored, by reason (out_of_range, not_a_count)."}, []string{"reason"}),
			duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "mesp_promread_query_duration_seconds",
				Help: "Time per Prometheus query.", Buckets: prometheus.ExponentialBuckets(0.005, 4, 8)}),
			lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{Name: "mesp_promread_last_success_timestamp_seconds",
				Help: "Unix time of the last successful query."}),
			stale: prometheus.NewGauge(prometheus.GaugeOpts{Name: "mesp_promread_functions_stale",
				Help: "Configured functions whose history is not current (last successful read older than the allowed lag)."}),
		}
	})
}

func (r *Reader) timeout() time.Duration { return orDefault(r.Timeout, 10*time.Second) }
func (r *Reader) maxLag() time.Duration  { return orDefault(r.MaxLag, 3*time.Minute) }
func (r *Reader) delay() time.Duration   { return orDefault(r.Delay, 5*time.Second) }
func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// Backfill reads every function up to the minute that ends at now: the
// whole day (the store's length) for a function not read before, else
// from its last success.
func (r *Reader) Backfill(ctx context.Context, now time.Time) error {
	r.init()
	return r.read(ctx, now)
}

// Run reads at once, then just after every minute boundary (every
// interval, rounded up to whole minutes) until ctx ends. A function whose
// read fails is read from its last success at the next tick; the others
// are not read again.
func (r *Reader) Run(ctx context.Context, every time.Duration) {
	r.init()
	now := time.Now()
	for {
		if err := r.read(ctx, now); err != nil && r.Log != nil {
			r.Log.Warn("reading prometheus failed", "err", err)
		}
		next := NextRefresh(now, every, r.delay())
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(next)):
			now = time.Now()
		}
	}
}

// NextRefresh is when the refresh after one at now starts: delay after
// the minute boundary every (whole minutes) later, so that the minute just
// closed is read once Prometheus has it, not a refresh later.
func NextRefresh(now time.Time, every, delay time.Duration) time.Time {
	return now.Truncate(time.Minute).Add(max(every.Truncate(time.Minute), time.Minute) + delay)
}

// Fresh is nil when the function's history is current: the reader does
// not read it (pushed functions), or read it successfully within MaxLag,
// or has not been in use for MaxLag yet (the first backfill may take a
// while); for a grouped query, the fleet was read within MaxLag and the
// function had a sample in the answer within MaxLag of the newest minute
// read (one with none has left Prometheus). Else ErrStale, saying since
// when.
func (r *Reader) Fresh(function string) error {
	r.init()
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.Grouped() && time.Since(r.started) < r.maxLag() {
		return nil
	}
	if r.Grouped() {
		// one read for the fleet: a function is as current as it, once the
		// reader has seen it (an unseen one is pushed, or has no series);
		// until the day's backfill has reached the current minute, the
		// slices read so far hold the older minutes only
		_, seen := r.readAt[function]
		switch {
		case !seen:
			return nil
		case !r.backfilled:
			return fmt.Errorf("%w: %s: the day is still being read from %s (read up to %s)", ErrStale, funcid.Short(function), r.URL,
				time.Unix(r.groupOK*60, 0).UTC().Format(time.RFC3339))
		case time.Since(r.groupAt) > r.maxLag():
			return fmt.Errorf("%w: %s's fleet last read from %s %s ago", ErrStale, funcid.Short(function), r.URL, time.Since(r.groupAt).Round(time.Second))
		case r.groupOK-1-r.lastOK[function] > int64(r.maxLag()/time.Minute):
			// the fleet is current but this function has had no sample
			// for longer than MaxLag: its series left Prometheus (the
			// function was removed, or its counter is no longer
			// exported), and its minutes since are not zeros anyone saw
			return fmt.Errorf("%w: %s has had no sample in %s's answer since %s", ErrStale, funcid.Short(function), r.URL,
				time.Unix((r.lastOK[function]+1)*60, 0).UTC().Format(time.RFC3339))
		}
		return nil
	}
	at, ok := r.readAt[function]
	if !ok {
		if !r.configured(function) {
			return nil
		}
		return fmt.Errorf("%w: %s never read from %s", ErrStale, funcid.Short(function), r.URL)
	}
	if lag := time.Since(at); lag > r.maxLag() {
		return fmt.Errorf("%w: %s last read from %s %s ago", ErrStale, funcid.Short(function), r.URL, lag.Round(time.Second))
	}
	return nil
}

func (r *Reader) configured(function string) bool {
	for _, f := range r.Functions {
		if f == function {
			return true
		}
	}
	return false
}

// read reads every function up to now's minute, Concurrency at a time.
func (r *Reader) read(ctx context.Context, now time.Time) error {
	if r.Grouped() {
		return r.readGrouped(ctx, now)
	}
	end := now.Unix() / 60 // samples at end*60 close minute end-1
	jobs := make(chan string)
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	workers := r.Concurrency
	if workers <= 0 {
		workers = 8
	}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range jobs {
				if err := r.readOne(ctx, name, end); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("function %s: %w", funcid.Short(name), err))
					mu.Unlock()
				}
			}
		}()
	}
	for _, name := range r.Functions {
		select {
		case jobs <- name:
		case <-ctx.Done():
		}
	}
	close(jobs)
	wg.Wait()
	r.countStale()
	return errors.Join(errs...)
}

// readOne reads one function from its last success (less Refresh
// minutes, for late samples) or the whole day, up to sample time end.
func (r *Reader) readOne(ctx context.Context, name string, end int64) error {
	refresh := int64(r.Refresh)
	if refresh <= 0 {
		refresh = 5
	}
	from := end - int64(r.Store.Length()) + 1
	r.mu.Lock()
	if last, ok := r.lastOK[name]; ok {
		from = max(from, last-refresh+1)
	}
	r.mu.Unlock()
	qctx, cancel := context.WithTimeout(ctx, r.timeout())
	defer cancel()
	start := time.Now()
	obs, err := r.fetch(qctx, name, from, end)
	r.m.duration.Observe(time.Since(start).Seconds())
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(qctx.Err(), context.DeadlineExceeded):
		r.m.queries.WithLabelValues("timeout").Inc()
		return fmt.Errorf("no answer within %s: %w", r.timeout(), err)
	case err != nil:
		r.m.queries.WithLabelValues("error").Inc()
		return err
	}
	if _, _, err := r.Store.Observe(obs); err != nil {
		r.m.queries.WithLabelValues("error").Inc()
		return err
	}
	r.m.queries.WithLabelValues("ok").Inc()
	r.m.lastSuccess.SetToCurrentTime()
	r.mu.Lock()
	r.lastOK[name], r.readAt[name] = end, time.Now()
	r.mu.Unlock()
	return nil
}

// countStale sets the stale gauge.
func (r *Reader) countStale() {
	n := 0
	if r.Grouped() {
		r.mu.Lock()
		if time.Since(r.groupAt) > r.maxLag() {
			n = len(r.readAt)
		}
		r.mu.Unlock()
		r.m.stale.Set(float64(n))
		return
	}
	for _, f := range r.Functions {
		if at, ok := r.readAtOf(f); !ok || time.Since(at) > r.maxLag() {
			n++
		}
	}
	r.m.stale.Set(float64(n))
}

func (r *Reader) readAtOf(f string) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	at, ok := r.readAt[f]
	return at, ok
}

// promQLString escapes a name for a PromQL double-quoted string: the
// query's $name sits between quotes, and a name holding a quote must not
// close them.
func promQLString(name string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(name)
}

// fetch runs the function's query over sample times from..to (Unix
// minutes, inclusive) and returns its samples as observations, each
// sample checked alone: one out of range or not a count is refused and
// counted, and the rest are kept.
func (r *Reader) fetch(ctx context.Context, name string, from, to int64) ([]history.Observation, error) {
	resp, err := r.queryRange(ctx, strings.ReplaceAll(r.Query, NamePlaceholder, promQLString(name)), from, to)
	if err != nil {
		return nil, fmt.Errorf("promread: %w", err)
	}
	defer resp.Body.Close()
	// A day of one series at a one-minute step is about 40 KB.
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("promread: %w", err)
	}
	var out struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Values [][2]json.RawMessage `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("promread: %s answered %d, not the query API's JSON: %w", r.URL, resp.StatusCode, err)
	}
	if out.Status != "success" {
		return nil, fmt.Errorf("promread: query failed (%d): %s", resp.StatusCode, out.Error)
	}
	if out.Data.ResultType != "matrix" {
		return nil, fmt.Errorf("promread: result type %q, want matrix", out.Data.ResultType)
	}
	switch len(out.Data.Result) {
	case 0:
		return nil, nil
	case 1:
	default:
		return nil, fmt.Errorf("promread: the query gives %d series, want one (aggregate it, e.g. with sum())", len(out.Data.Result))
	}
	obs, refused := r.samples(name, out.Data.Result[0].Values, from, to)
	if refused != nil && r.Log != nil {
		r.Log.Warn("prometheus samples refused", "function", funcid.Short(name), "last", refused)
	}
	return obs, nil
}

// queryRange asks Prometheus' query_range for query over sample times
// from..to (Unix minutes, inclusive) at a one-minute step, within the
// reader's timeout.
func (r *Reader) queryRange(ctx context.Context, query string, from, to int64) (*http.Response, error) {
	q := url.Values{}
	q.Set("query", query)
	q.Set("start", strconv.FormatInt(from*60, 10))
	q.Set("end", strconv.FormatInt(to*60, 10))
	q.Set("step", "60")
	q.Set("timeout", strconv.FormatFloat(r.timeout().Seconds(), 'f', -1, 64)+"s")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(r.URL, "/")+"/api/v1/query_range?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	client := r.Client
	if client == nil {
		client = http.DefaultClient
	}
	return client.Do(req)
}

// samples reads a series' [time, "value"] pairs as the function's
// observations, each checked alone (sample): a refused one is counted by
// its reason and left out, and the last refusal is returned.
func (r *Reader) samples(name string, values [][2]json.RawMessage, from, to int64) ([]history.Observation, error) {
	obs := make([]history.Observation, 0, len(values))
	var refused error
	for _, v := range values {
		o, reason, err := sample(v, from, to)
		if err != nil {
			r.m.refused.WithLabelValues(reason).Inc()
			refused = err
			continue
		}
		o.ID = name
		obs = append(obs, o)
	}
	return obs, refused
}

// sample reads one [time, "value"] pair as the count of the minute that
// ended at time, refusing a time off the asked-for range or steps (reason
// out_of_range) and a value that is not a count (not_a_count: NaN,
// negative as a counter reset gives with `c - c offset 1m`, huge).
func sample(v [2]json.RawMessage, from, to int64) (history.Observation, string, error) {
	var ts float64
	var s string
	if err := json.Unmarshal(v[0], &ts); err != nil {
		return history.Observation{}, "not_a_count", fmt.Errorf("sample time %.40s: %w", v[0], err)
	}
	if ts != float64(int64(ts)) || int64(ts)%60 != 0 || int64(ts)/60 < from || int64(ts)/60 > to {
		return history.Observation{}, "out_of_range", fmt.Errorf("sample time %.0f outside the minutes asked for", ts)
	}
	if err := json.Unmarshal(v[1], &s); err != nil {
		return history.Observation{}, "not_a_count", fmt.Errorf("sample value %.40s: %w", v[1], err)
	}
	c, err := strconv.ParseFloat(s, 64)
	if err == nil {
		err = trace.CheckCount(c)
	}
	if err != nil {
		return history.Observation{}, "not_a_count", fmt.Errorf("sample value %.40q: %w", s, err)
	}
	return history.Observation{Minute: int64(ts)/60 - 1, Count: c}, "", nil
}
