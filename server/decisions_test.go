package server_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/mesp-project/mesp/decide"
	"github.com/mesp-project/mesp/forecast"
	"github.com/mesp-project/mesp/server"
)

// fixedTable is a decision table held as it is (decide.Loop's Current).
type fixedTable struct{ t *decide.Table }

func (f fixedTable) Current() *decide.Table { return f.t }

// TestDecisionsStreamTheTable: GET /v1/decisions streams the table as
// NDJSON in id order, pages with after and limit, gives the minutes asked
// for with warm at the set's (or the asked) threshold; 503 before a minute
// is decided, 404 without a table, 400 for a bad parameter.
func TestDecisionsStreamTheTable(t *testing.T) {
	const minute = int64(29_000_000)
	tab := &decide.Table{Minute: minute, Entries: map[string]decide.Entry{}}
	for i := range 5 {
		id := fmt.Sprintf("ns/f%d", i)
		p, f := make([]float32, 60), make([]float32, 60)
		for h := range 60 {
			p[h], f[h] = float32(i)/10+float32(h)/1000, float32(10*i+h)
		}
		q9 := make([]float32, 60)
		for h := range 60 {
			q9[h] = f[h] + 100
		}
		tab.Entries[id], tab.IDs = decide.Entry{PInvoke: p, Forecast: f, Missing: i % 2,
			Quantiles: []forecast.QuantileCounts{{Q: 0.9, Counts: q9}}}, append(tab.IDs, id)
	}
	table := &fixedTable{}
	srv := server.New(&fakeModels{reloadOK: true}, server.Options{MaxBatch: 8, MaxBodyBytes: 1 << 20,
		ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second, Decisions: table})
	srv.Reload("start")
	url := serve(t, srv)

	if code, _ := get(t, url+"/v1/decisions"); code != http.StatusServiceUnavailable {
		t.Fatalf("before a minute is decided: %d, want 503", code)
	}
	table.t = tab
	lines := func(query string) []server.DecisionJSON {
		t.Helper()
		code, body := get(t, url+"/v1/decisions"+query)
		if code != http.StatusOK {
			t.Fatalf("%s: %d %s", query, code, body)
		}
		var out []server.DecisionJSON
		sc := bufio.NewScanner(bytes.NewReader(body))
		for sc.Scan() {
			var d server.DecisionJSON
			if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
				t.Fatalf("%s: line %q: %v", query, sc.Text(), err)
			}
			out = append(out, d)
		}
		return out
	}
	all := lines("")
	if len(all) != 5 || all[0].ID != "ns/f0" || all[4].ID != "ns/f4" || !all[0].Minute.Equal(time.Unix(minute*60, 0)) {
		t.Fatalf("the whole table: %+v", all)
	}
	// the fake set's threshold is 0.2: f2's p_invoke 0.2 is warm, f1's 0.1 not
	if len(all[2].PInvoke) != 1 || !all[2].Warm[0] || all[1].Warm[0] || all[2].Threshold != 0.2 || all[3].Forecast[0] != 30 {
		t.Fatalf("one minute at the set's threshold: %+v %+v", all[1], all[2])
	}
	// a function decided without its last minute says so; a complete one
	// carries no missing_minutes at all
	if all[1].MissingMinutes != 1 || all[2].MissingMinutes != 0 {
		t.Fatalf("missing minutes: %d and %d, want 1 and 0", all[1].MissingMinutes, all[2].MissingMinutes)
	}
	if _, body := get(t, url+"/v1/decisions?limit=1"); bytes.Contains(body, []byte("missing_minutes")) {
		t.Fatalf("a complete function's line names missing_minutes: %s", body)
	}
	page := lines("?after=ns/f1&limit=2&minutes=3&threshold=0.25")
	if len(page) != 2 || page[0].ID != "ns/f2" || page[1].ID != "ns/f3" || len(page[1].Forecast) != 3 {
		t.Fatalf("a page after ns/f1 of 2: %+v", page)
	}
	if page[0].Warm[0] || !page[1].Warm[0] || page[1].Threshold != 0.25 {
		t.Fatalf("at threshold 0.25: %+v", page)
	}
	// the demand at a level the table keeps, or the expected count; none
	// unless asked
	if _, body := get(t, url+"/v1/decisions"); bytes.Contains(body, []byte("demand")) {
		t.Fatalf("demand streamed unasked: %s", body)
	}
	q := lines("?quantile=0.9&minutes=2")
	if len(q) != 5 || len(q[3].Demand) != 2 || q[3].Demand[0] != 130 || q[3].Demand[1] != 131 {
		t.Fatalf("the 0.9 quantile's demand: %+v", q[3])
	}
	if m := lines("?quantile=mean&limit=1"); len(m[0].Demand) != 1 || m[0].Demand[0] != m[0].Forecast[0] {
		t.Fatalf("the mean's demand: %+v", m[0])
	}
	if code, body := get(t, url+"/v1/decisions?quantile=0.99"); code != http.StatusBadRequest || !bytes.Contains(body, []byte("[0.9]")) {
		t.Errorf("a level the table does not keep: %d %s, want a 400 naming the kept ones", code, body)
	}
	for _, bad := range []string{"?minutes=0", "?minutes=61", "?limit=x", "?threshold=2", "?quantile=x"} {
		if code, body := get(t, url+"/v1/decisions"+bad); code != http.StatusBadRequest || !bytes.Contains(body, []byte(`"message"`)) {
			t.Errorf("%s: %d %s, want a JSON 400", bad, code, body)
		}
	}
	none := server.New(&fakeModels{reloadOK: true}, server.Options{MaxBatch: 8, MaxBodyBytes: 1 << 20, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second})
	none.Reload("start")
	if code, _ := get(t, serve(t, none)+"/v1/decisions"); code != http.StatusNotFound {
		t.Fatalf("without a table: %d, want 404", code)
	}
}
