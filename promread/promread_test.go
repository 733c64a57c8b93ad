package promread_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mesp-project/mesp/history"
	"github.com/mesp-project/mesp/promread"
)

// The query API's answers, as Prometheus writes them, become minutes of
// the history (a sample at T is the minute that ended at T), and answers
// that cannot be one function's counts are errors, not guesses.
func TestReaderMapsSamplesAndRefusesAmbiguousAnswers(t *testing.T) {
	cases := []struct {
		name, body string
		want       []float64 // the history's last minutes
		err        string
	}{
		{"one series", `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[` +
			"1739999880" + `,"3"],[1739999940,"0"],[1740000000,"5"]]}]}}`, []float64{3, 0, 5}, ""},
		{"no series: nothing stored", `{"status":"success","data":{"resultType":"matrix","result":[]}}`, nil, ""},
		{"two series", `{"status":"success","data":{"resultType":"matrix","result":[{"values":[]},{"values":[]}]}}`, nil, "aggregate"},
		{"a query error", `{"status":"error","errorType":"bad_data","error":"parse error"}`, nil, "parse error"},
		{"not JSON", `<html>proxy error</html>`, nil, "not the query API"},
		// One bad sample refuses its minute, not the answer (it refused the
		// whole day, and the day was read again at every refresh).
		{"NaN and a counter reset among good samples", `{"status":"success","data":{"resultType":"matrix","result":[{"values":[[1739999820,"2"],[1739999880,"NaN"],[1739999940,"-4"],[1740000000,"5"]]}]}}`, []float64{2, 0, 0, 5}, ""},
		{"a sample a year ahead and one from 1970", `{"status":"success","data":{"resultType":"matrix","result":[{"values":[[60,"9"],[1739999940,"1"],[1740000000,"5"],[1771536000,"7"]]}]}}`, []float64{1, 5}, ""},
		{"a sample between minutes", `{"status":"success","data":{"resultType":"matrix","result":[{"values":[[1739999940,"1"],[1739999970,"8"],[1740000000,"5"]]}]}}`, []float64{1, 5}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var query string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				query = r.URL.Query().Get("query")
				w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			store := history.New(1440, 10)
			r := &promread.Reader{URL: srv.URL, Query: `sum(increase(x{function="$name"}[1m]))`, Functions: []string{"f"}, Store: store}
			err := r.Backfill(context.Background(), time.Unix(1740000000, 0))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if query != `sum(increase(x{function="f"}[1m]))` {
				t.Fatalf("query %q", query)
			}
			got, err := store.Window("f", 1740000000/60)
			if tc.want == nil {
				if !errors.Is(err, history.ErrUnknown) {
					t.Fatalf("no series: %v %v", got, err)
				}
				return
			}
			if err != nil || len(got) < len(tc.want) || !slices.Equal(got[len(got)-len(tc.want):], tc.want) {
				t.Fatalf("history %v, %v; want it to end %v", got, err, tc.want)
			}
		})
	}
}

// fakeProm answers query_range per function (the name between quotes in
// the query) and records what was asked.
type fakeProm struct {
	mu       sync.Mutex
	inflight int
	most     int
	starts   map[string][]int64
	answer   func(w http.ResponseWriter, name string, start, end int64)
}

func (p *fakeProm) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	name := strings.Split(q.Get("query"), `"`)[1]
	start, _ := strconv.ParseInt(q.Get("start"), 10, 64)
	end, _ := strconv.ParseInt(q.Get("end"), 10, 64)
	p.mu.Lock()
	p.inflight++
	p.most = max(p.most, p.inflight)
	if p.starts == nil {
		p.starts = map[string][]int64{}
	}
	p.starts[name] = append(p.starts[name], start)
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.inflight--
		p.mu.Unlock()
	}()
	p.answer(w, name, start, end)
}

// series answers one sample of value 1 at every step from start to end.
func series(w http.ResponseWriter, start, end int64) {
	var vals []string
	for t := start; t <= end; t += 60 {
		vals = append(vals, fmt.Sprintf(`[%d,"1"]`, t))
	}
	fmt.Fprintf(w, `{"status":"success","data":{"resultType":"matrix","result":[{"values":[%s]}]}}`, strings.Join(vals, ","))
}

// TestHungAndDrippingQueriesStopNoOtherFunction: one function's query
// hangs and another's answer drips a byte at a time; each is cut at the
// timeout, the other functions are read, at most Concurrency queries run
// at once, the failures are on /metrics, and the two stale functions are
// reported stale while the others are fresh. (One hung query stopped all
// reading for 34 minutes, silently.)
func TestHungAndDrippingQueriesStopNoOtherFunction(t *testing.T) {
	release := make(chan struct{})
	p := &fakeProm{answer: func(w http.ResponseWriter, name string, start, end int64) {
		switch name {
		case "hung":
			select {
			case <-release:
			case <-time.After(time.Minute):
			}
		case "drip":
			w.Header().Set("Content-Type", "application/json")
			for range 600 {
				if _, err := w.Write([]byte(" ")); err != nil {
					return
				}
				w.(http.Flusher).Flush()
				select {
				case <-release:
					return
				case <-time.After(50 * time.Millisecond):
				}
			}
		default:
			time.Sleep(20 * time.Millisecond)
			series(w, start, end)
		}
	}}
	srv := httptest.NewServer(p)
	defer srv.Close()
	defer close(release) // before Close, which waits for the handlers
	fns := []string{"hung", "drip"}
	for i := range 20 {
		fns = append(fns, fmt.Sprintf("fn-%d", i))
	}
	store := history.New(1440, 100)
	reg := prometheus.NewRegistry()
	r := &promread.Reader{URL: srv.URL, Query: `x{function="$name"}`, Functions: fns, Store: store,
		Timeout: 300 * time.Millisecond, Concurrency: 4, MaxLag: 400 * time.Millisecond}
	if err := r.Register(reg); err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1740000000, 0)
	err := r.Backfill(context.Background(), now)
	if err == nil || !strings.Contains(err.Error(), `"hung"`) || !strings.Contains(err.Error(), `"drip"`) || strings.Contains(err.Error(), "fn-") {
		t.Fatalf("backfill: %v", err)
	}
	for _, f := range fns[2:] {
		got, err := store.Window(f, now.Unix()/60)
		if err != nil || len(got) != 1440 {
			t.Fatalf("%s: %d minutes, %v", f, len(got), err)
		}
	}
	if p.most > 4 {
		t.Fatalf("%d queries at once, at most 4 allowed", p.most)
	}
	time.Sleep(450 * time.Millisecond) // past MaxLag since the reader started
	r.Backfill(context.Background(), now)
	for _, f := range fns {
		err := r.Fresh(f)
		if stale := f == "hung" || f == "drip"; stale != errors.Is(err, promread.ErrStale) {
			t.Errorf("Fresh(%s): %v", f, err)
		}
	}
	if err := r.Fresh("pushed-not-read"); err != nil {
		t.Errorf("a function the reader does not read: %v", err)
	}
	mfs, _ := reg.Gather()
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += "/" + l.GetValue()
			}
			got[key] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	if got["mesp_promread_queries_total/timeout"] != 4 || got["mesp_promread_queries_total/ok"] != 40 ||
		got["mesp_promread_functions_stale"] != 2 || got["mesp_promread_last_success_timestamp_seconds"] < float64(time.Now().Unix()-60) {
		t.Fatalf("metrics %v", got)
	}
}

// TestEachFunctionReadsOnFromItsLastSuccess: a function that failed is
// read from the start of the day again; the others only from their last
// read (less the refresh's minutes), not the whole day at every refresh.
func TestEachFunctionReadsOnFromItsLastSuccess(t *testing.T) {
	failing := true
	var mu sync.Mutex
	p := &fakeProm{answer: func(w http.ResponseWriter, name string, start, end int64) {
		mu.Lock()
		fail := failing && name == "flaky"
		mu.Unlock()
		if fail {
			http.Error(w, `{"status":"error","error":"overloaded"}`, http.StatusServiceUnavailable)
			return
		}
		series(w, start, end)
	}}
	srv := httptest.NewServer(p)
	defer srv.Close()
	r := &promread.Reader{URL: srv.URL, Query: `x{function="$name"}`, Functions: []string{"steady", "flaky"},
		Store: history.New(1440, 10), Refresh: 5}
	t0 := int64(1740000000)
	r.Backfill(context.Background(), time.Unix(t0, 0))
	mu.Lock()
	failing = false
	mu.Unlock()
	if err := r.Backfill(context.Background(), time.Unix(t0+120, 0)); err != nil {
		t.Fatal(err)
	}
	want := map[string][]int64{
		"steady": {t0 - 1439*60, t0 - 4*60},
		"flaky":  {t0 - 1439*60, t0 + 120 - 1439*60},
	}
	for f, w := range want {
		if !slices.Equal(p.starts[f], w) {
			t.Errorf("%s: starts %v, want %v", f, p.starts[f], w)
		}
	}
}

// TestNamesCannotEscapeTheQuery: $name sits inside a PromQL string; a
// name with a quote must not end it and add matchers.
func TestNamesCannotEscapeTheQuery(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.URL.Query().Get("query")
		w.Write([]byte(`{"status":"success","data":{"resultType":"matrix","result":[]}}`))
	}))
	defer srv.Close()
	name := `a",job=~".+`
	r := &promread.Reader{URL: srv.URL, Query: `x{function="$name"}`, Functions: []string{name}, Store: history.New(1440, 10)}
	if err := r.Backfill(context.Background(), time.Unix(1740000000, 0)); err != nil {
		t.Fatal(err)
	}
	if want := `x{function="a\",job=~\".+"}`; got != want {
		t.Fatalf("query %s, want %s", got, want)
	}
}

// TestRefreshesFollowMinuteBoundaries: a refresh starts just after a
// minute closes, whatever moment the reader started at (the ticker ran
// from the start time, and the minute just closed read as silence until
// the next refresh).
func TestRefreshesFollowMinuteBoundaries(t *testing.T) {
	base := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		now   time.Time
		every time.Duration
		want  time.Time
	}{
		{base.Add(37 * time.Second), time.Minute, base.Add(time.Minute + 5*time.Second)},
		{base.Add(59 * time.Second), time.Minute, base.Add(time.Minute + 5*time.Second)},
		{base.Add(5 * time.Second), time.Minute, base.Add(time.Minute + 5*time.Second)},
		{base.Add(10 * time.Second), 2 * time.Minute, base.Add(2*time.Minute + 5*time.Second)},
		{base.Add(10 * time.Second), 90 * time.Second, base.Add(time.Minute + 5*time.Second)},
		{base.Add(10 * time.Second), time.Second, base.Add(time.Minute + 5*time.Second)},
	}
	for _, c := range cases {
		if got := promread.NextRefresh(c.now, c.every, 5*time.Second); !got.Equal(c.want) {
			t.Errorf("after %s every %s: %s, want %s", c.now.Format("15:04:05"), c.every, got.Format("15:04:05"), c.want.Format("15:04:05"))
		}
	}
}
