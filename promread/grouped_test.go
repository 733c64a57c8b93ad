package promread_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
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

// fleetProm answers a grouped query_range with one series per function
// (value: the function's index + 1 at every step), recording the ranges
// asked for.
type fleetProm struct {
	mu     sync.Mutex
	ranges [][2]int64
	names  []string
	extra  string // series appended to every answer (raw JSON, leading comma)
	fail   bool
	// failFrom, when above 0, fails the queries from that many on
	failFrom int
	// until, per name: no samples after this sample time (the series left)
	until map[string]int64
}

func (p *fleetProm) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	start, _ := strconv.ParseInt(q.Get("start"), 10, 64)
	end, _ := strconv.ParseInt(q.Get("end"), 10, 64)
	p.mu.Lock()
	p.ranges = append(p.ranges, [2]int64{start, end})
	fail := p.fail || p.failFrom > 0 && len(p.ranges) > p.failFrom
	p.mu.Unlock()
	if fail {
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(`{"status":"error","errorType":"unavailable","error":"too many queries"}`))
		return
	}
	var series []string
	for i, name := range p.names {
		var vals []string
		for t := start; t <= end; t += 60 {
			if u, ok := p.until[name]; ok && t > u {
				break
			}
			vals = append(vals, fmt.Sprintf(`[%d,"%d"]`, t, i+1))
		}
		if len(vals) == 0 {
			continue // no sample in the range: no series in the answer
		}
		series = append(series, fmt.Sprintf(`{"metric":{"function":%q,"pod":"x"},"values":[%s]}`, name, strings.Join(vals, ",")))
	}
	fmt.Fprintf(w, `{"status":"success","data":{"resultType":"matrix","result":[%s%s]}}`, strings.Join(series, ","), p.extra)
}

func TestGroupedQueryReadsTheFleetInOneQueryPerSlice(t *testing.T) {
	now := time.Unix(1740000000, 0) // a minute boundary
	end := now.Unix() / 60
	names := make([]string, 300)
	for i := range names {
		names[i] = fmt.Sprintf("ns/fn-%03d", i)
	}
	p := &fleetProm{names: names, extra: `,{"metric":{"pod":"no-label"},"values":[[1740000000,"1"]]}` +
		`,{"metric":{"function":"ns/fn-000"},"values":[[1740000000,"99"]]}`}
	srv := httptest.NewServer(p)
	defer srv.Close()
	store := history.New(1440, 1000)
	reg := prometheus.NewRegistry()
	r := &promread.Reader{URL: srv.URL, Query: `sum by (function) (increase(invocations_total[1m]))`, Store: store, Slice: 180}
	if !r.Grouped() {
		t.Fatal("a query without $name is not grouped")
	}
	if err := r.Register(reg); err != nil {
		t.Fatal(err)
	}
	if err := r.Backfill(context.Background(), now); err != nil {
		t.Fatal(err)
	}
	// the day in 8 slices of 180 minutes: 8 queries for 300 functions
	if len(p.ranges) != 8 || p.ranges[0][0] != (end-1439)*60 || p.ranges[7][1] != end*60 {
		t.Fatalf("queries %v, want 8 slices covering minutes %d..%d", p.ranges, end-1439, end)
	}
	for k := 1; k < len(p.ranges); k++ {
		if p.ranges[k][0] != p.ranges[k-1][1]+60 {
			t.Fatalf("slices %v and %v overlap or leave a gap", p.ranges[k-1], p.ranges[k])
		}
	}
	for i, name := range names {
		got, err := store.Window(name, end)
		if err != nil || len(got) != 1440 || got[0] != float64(i+1) || got[1439] != float64(i+1) {
			t.Fatalf("%s: history %v... (%d minutes), %v", name, got[:min(3, len(got))], len(got), err)
		}
	}
	// the label-less series and the second series of fn-000 are refused
	// alone, on /metrics, and stored nothing
	if got := refused(t, reg, "no_label"); got != 8 {
		t.Errorf("series without the label refused %v times, want 8 (one per slice)", got)
	}
	if got := refused(t, reg, "duplicate"); got != 8 {
		t.Errorf("duplicate series refused %v times, want 8", got)
	}
	if w, _ := store.Window("ns/fn-000", end); w[1439] != 1 {
		t.Fatalf("the duplicate series overwrote the first: %v", w[1439])
	}

	// the refresh reads from the last success less Refresh minutes: one
	// query; a new function is discovered from the answer
	p.mu.Lock()
	p.ranges, p.names = nil, append(p.names, "ns/new")
	p.mu.Unlock()
	if err := r.Backfill(context.Background(), now.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if len(p.ranges) != 1 || p.ranges[0] != [2]int64{(end - 4) * 60, (end + 2) * 60} {
		t.Fatalf("refresh asked %v, want minutes %d..%d in one query", p.ranges, end-4, end+2)
	}
	if got, err := store.Window("ns/new", end+2); err != nil || got[len(got)-1] != 301 {
		t.Fatalf("the new function: %v", err)
	}
	if err := r.Fresh("ns/fn-007"); err != nil {
		t.Fatal(err)
	}
}

func TestGroupedQueryFiltersAndFails(t *testing.T) {
	now := time.Unix(1740000000, 0)
	end := now.Unix() / 60
	p := &fleetProm{names: []string{"prod/a", "prod/b", "dev/a"}}
	srv := httptest.NewServer(p)
	defer srv.Close()
	for _, tc := range []struct {
		name      string
		match     *regexp.Regexp
		functions []string
		reads     []string
	}{
		{"every function", nil, nil, []string{"prod/a", "prod/b", "dev/a"}},
		{"a match", regexp.MustCompile(`^prod/`), nil, []string{"prod/a", "prod/b"}},
		{"a list", nil, []string{"prod/b", "dev/a", "absent"}, []string{"prod/b", "dev/a"}},
	} {
		store := history.New(1440, 10)
		r := &promread.Reader{URL: srv.URL, Query: `sum by (function) (increase(x[1m]))`, Store: store, Match: tc.match, Functions: tc.functions}
		if err := r.Backfill(context.Background(), now); err != nil {
			t.Fatal(err)
		}
		for _, name := range p.names {
			_, err := store.Window(name, end)
			if read := slices.Contains(tc.reads, name); read != (err == nil) {
				t.Errorf("%s: %s read %v, want %v (%v)", tc.name, name, err == nil, read, err)
			}
		}
	}

	// a failed query is an error and the next read starts where the
	// reading stopped; an answer over MaxBody is refused, not half-read
	store := history.New(1440, 10)
	r := &promread.Reader{URL: srv.URL, Query: `sum by (function) (x)`, Store: store, Slice: 720}
	p.mu.Lock()
	p.fail, p.ranges = true, nil
	p.mu.Unlock()
	if err := r.Backfill(context.Background(), now); err == nil || !strings.Contains(err.Error(), "too many queries") {
		t.Fatalf("a failed query: %v", err)
	}
	p.mu.Lock()
	p.fail, p.ranges = false, nil
	p.mu.Unlock()
	if err := r.Backfill(context.Background(), now); err != nil {
		t.Fatal(err)
	}
	if p.ranges[0][0] != (end-1439)*60 {
		t.Fatalf("after a failure the read starts at %d, want the day's start %d", p.ranges[0][0]/60, end-1439)
	}
	// a backfill stopped after its first slice: the functions it saw are
	// stale (their recent minutes are unread, not silent) until a read
	// reaches the current minute
	p.mu.Lock()
	p.failFrom, p.ranges = 1, nil
	p.mu.Unlock()
	half := &promread.Reader{URL: srv.URL, Query: `sum by (function) (x)`, Store: history.New(1440, 10), Slice: 720}
	if err := half.Backfill(context.Background(), now); err == nil {
		t.Fatal("the second slice failed, yet no error")
	}
	if err := half.Fresh("prod/a"); !errors.Is(err, promread.ErrStale) || !strings.Contains(err.Error(), "still being read") {
		t.Fatalf("half a day read: Fresh %v, want stale", err)
	}
	p.mu.Lock()
	p.failFrom = 0
	p.mu.Unlock()
	if err := half.Backfill(context.Background(), now); err != nil {
		t.Fatal(err)
	}
	if err := half.Fresh("prod/a"); err != nil {
		t.Fatalf("the day read: Fresh %v", err)
	}
	small := &promread.Reader{URL: srv.URL, Query: `sum by (function) (x)`, Store: history.New(1440, 10), MaxBody: 100}
	if err := small.Backfill(context.Background(), now); err == nil || !strings.Contains(err.Error(), "max_body_bytes") {
		t.Fatalf("an answer over the bound: %v", err)
	}
	if _, err := small.Store.Window("prod/a", end); !errors.Is(err, history.ErrUnknown) {
		t.Fatalf("a refused answer stored minutes: %v", err)
	}
}

// refused is mesp_promread_samples_refused_total for reason.
func refused(t *testing.T, reg *prometheus.Registry, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "mesp_promread_samples_refused_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestAFunctionThatLeavesTheAnswerGoesStale: once the fleet is read, a
// function whose series has had no sample for longer than MaxLag is stale
// (it left Prometheus), while the others, read in the same queries, are
// current; one that stopped within MaxLag is still current.
func TestAFunctionThatLeavesTheAnswerGoesStale(t *testing.T) {
	now := time.Unix(1740000000, 0)
	end := now.Unix()
	p := &fleetProm{names: []string{"ns/stays", "ns/left", "ns/paused"},
		until: map[string]int64{"ns/left": end - 600*60, "ns/paused": end - 2*60}}
	srv := httptest.NewServer(p)
	defer srv.Close()
	r := &promread.Reader{URL: srv.URL, Query: `sum by (function) (increase(invocations_total[1m]))`,
		Store: history.New(1440, 100), Slice: 360, MaxLag: 3 * time.Minute}
	if err := r.Backfill(context.Background(), now); err != nil {
		t.Fatal(err)
	}
	for name, stale := range map[string]bool{"ns/stays": false, "ns/left": true, "ns/paused": false, "ns/pushed": false} {
		err := r.Fresh(name)
		if stale != errors.Is(err, promread.ErrStale) || stale && !strings.Contains(err.Error(), "no sample") {
			t.Errorf("%s: Fresh %v, want stale %v", name, err, stale)
		}
	}
}
