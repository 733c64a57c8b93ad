package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mesp-project/mesp/history"
	"github.com/mesp-project/mesp/server"
)

// A day of real counts of 20 functions, pushed over HTTP by 12 concurrent
// clients in batches that interleave functions and minutes (every minute
// twice), reads back exactly from GET /v1/history.
func TestObserveConcurrentPushesLoseNoMinute(t *testing.T) {
	end := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	start := end.Add(-1440 * time.Minute)
	ts := startWith(t, func(o *server.Options) {
		o.History = history.New(1440, 100)
		o.Now = func() time.Time { return end.Add(30 * time.Second) }
	})
	fns := fixtureRows(t, 20)
	var all []server.ObservationJSON
	for m := range 1440 {
		for _, f := range fns {
			c := f.Counts[m]
			o := server.ObservationJSON{ID: f.ID, Minute: start.Add(time.Duration(m) * time.Minute), Count: &c}
			all = append(all, o, o)
		}
	}
	const clients, batch = 12, 500
	var wg sync.WaitGroup
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w * batch; i < len(all); i += clients * batch {
				body, _ := json.Marshal(server.ObserveRequest{Observations: all[i:min(i+batch, len(all))]})
				if code, b := post(t, ts.URL+"/v1/observe", string(body)); code != http.StatusOK {
					t.Errorf("push: %d %s", code, b)
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, f := range fns {
		code, b := get(t, ts.URL+"/v1/history/"+f.ID)
		var h server.HistoryResponse
		if code != http.StatusOK || json.Unmarshal(b, &h) != nil {
			t.Fatalf("history of %s: %d %s", f.ID, code, b)
		}
		if !h.End.Equal(end) || !slices.Equal(h.Counts, f.Counts) {
			t.Fatalf("history of %s: %d minutes ending %v differ from the day pushed", f.ID, len(h.Counts), h.End)
		}
	}
}

func TestObserveRefusesBadInput(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 30, 0, time.UTC)
	store := history.New(1440, 2)
	ts := startWith(t, func(o *server.Options) {
		o.History = store
		o.Now = func() time.Time { return now }
	})
	ok := `{"id":"a","minute":"2026-11-27T11:59:00Z","count":1}`
	cases := []struct {
		name, body string
		status     int
		message    string
	}{
		{"negative count", `{"observations":[` + ok + `,{"id":"b","minute":"2026-11-27T11:59:00Z","count":-1}]}`, 400, "negative count"},
		{"a count beyond any function's minute", `{"observations":[{"id":"b","minute":"2026-11-27T11:59:00Z","count":1e34}]}`, 400, "too large"},
		{"id of a megabyte", `{"observations":[{"id":"` + strings.Repeat("x", 1<<20) + `","minute":"2026-11-27T11:59:00Z","count":1}]}`, 400, "(1048576 bytes)"},
		{"control character in id", `{"observations":[{"id":"b\nlevel=ERROR","minute":"2026-11-27T11:59:00Z","count":1}]}`, 400, "control character"},
		{"case-folded key", `{"observations":[{"ID":"b","minute":"2026-11-27T11:59:00Z","count":1}]}`, 400, "unknown field"},
		{"trailing garbage", `{"observations":[{"id":"b","minute":"2026-11-27T11:59:00Z","count":1}]}xyz`, 400, "trailing"},
		{"null count", `{"observations":[{"id":"b","minute":"2026-11-27T11:59:00Z","count":null}]}`, 400, "null"},
		{"not on a minute", `{"observations":[{"id":"b","minute":"2026-11-27T11:59:10Z","count":1}]}`, 400, "seconds 0"},
		{"in the future", `{"observations":[{"id":"b","minute":"2026-11-27T12:05:00Z","count":1}]}`, 400, "future"},
		{"not a time", `{"observations":[{"id":"b","minute":"yesterday","count":1}]}`, 400, "body"},
		{"unknown field", `{"observations":[{"id":"b","minute":"2026-11-27T11:59:00Z","count":1,"x":2}]}`, 400, "unknown field"},
		{"empty", `{"observations":[]}`, 400, "no observations"},
		{"no id", `{"observations":[{"minute":"2026-11-27T11:59:00Z","count":1}]}`, 400, "id is missing"},
		{"a third function past the limit of two", `{"observations":[` + ok + `,{"id":"b","minute":"2026-11-27T11:59:00Z","count":1},{"id":"c","minute":"2026-11-27T11:59:00Z","count":1}]}`, 507, "limit"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, b := post(t, ts.URL+"/v1/observe", tc.body)
			var e server.APIError
			if code != tc.status || json.Unmarshal(b, &e) != nil || e.Error.Status != tc.status || !strings.Contains(e.Error.Message, tc.message) {
				t.Fatalf("%d %s, want %d with %q", code, b, tc.status, tc.message)
			}
		})
	}
	// the refused batches stored nothing but what came before the limit
	if code, b := get(t, ts.URL+"/v1/history/c"); code != http.StatusNotFound {
		t.Fatalf("function c after a refused push: %d %s", code, b)
	}
	req, _ := http.NewRequest(http.MethodPost, ts.URL+"/v1/observe", strings.NewReader(`{"observations":[`+ok+`]}`))
	req.Header.Set("Content-Type", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Fatalf("text/plain push: %d", resp.StatusCode)
	}
}

// TestWritesNeedATokenOrALoopbackClient: pushes change what MESP decides
// from, so any pod must not make them: with server.write_token a write
// needs it, without one only a loopback client may write. Reads stay open.
func TestWritesNeedATokenOrALoopbackClient(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 30, 0, time.UTC)
	body := `{"observations":[{"id":"a","minute":"2026-11-27T11:59:00Z","count":1}]}`
	cases := []struct {
		name, token, remote, auth string
		status                    int
	}{
		{"no token set, loopback", "", "127.0.0.1:5000", "", http.StatusOK},
		{"no token set, loopback v6", "", "[::1]:5000", "", http.StatusOK},
		{"no token set, another pod", "", "10.1.2.3:5000", "", http.StatusForbidden},
		{"no token set, another pod with a made-up token", "", "10.1.2.3:5000", "Bearer x", http.StatusForbidden},
		{"token set, another pod with it", "s3cret", "10.1.2.3:5000", "Bearer s3cret", http.StatusOK},
		{"token set, another pod without it", "s3cret", "10.1.2.3:5000", "", http.StatusUnauthorized},
		{"token set, loopback without it", "s3cret", "127.0.0.1:5000", "", http.StatusUnauthorized},
		{"token set, a wrong one", "s3cret", "10.1.2.3:5000", "Bearer s3cre", http.StatusUnauthorized},
		{"token set, not a bearer", "s3cret", "10.1.2.3:5000", "Basic s3cret", http.StatusUnauthorized},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			store := history.New(1440, 10)
			srv := server.New(&fakeModels{reloadOK: true}, server.Options{MaxBatch: 8, History: store, WriteToken: c.token,
				Now: func() time.Time { return now }})
			req := httptest.NewRequest(http.MethodPost, "/v1/observe", strings.NewReader(body))
			req.RemoteAddr = c.remote
			req.Header.Set("Content-Type", "application/json")
			if c.auth != "" {
				req.Header.Set("Authorization", c.auth)
			}
			rec := httptest.NewRecorder()
			srv.Echo().ServeHTTP(rec, req)
			if rec.Code != c.status {
				t.Fatalf("%d %s, want %d", rec.Code, rec.Body, c.status)
			}
			if stored := store.Len() == 1; stored != (c.status == http.StatusOK) {
				t.Fatalf("stored %v after %d", stored, rec.Code)
			}
			read := httptest.NewRequest(http.MethodGet, "/v1/history/a", nil)
			read.RemoteAddr = c.remote
			rec = httptest.NewRecorder()
			srv.Echo().ServeHTTP(rec, read)
			if want := map[bool]int{true: 200, false: 404}[c.status == http.StatusOK]; rec.Code != want {
				t.Fatalf("reading back: %d, want %d", rec.Code, want)
			}
		})
	}
}

// TestIDsWithSlashesReadBack: an id such as "ns/fn" is pushed as it is
// and read back with its slash escaped in the path (%2F could not be).
func TestIDsWithSlashesReadBack(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 30, 0, time.UTC)
	ts := startWith(t, func(o *server.Options) {
		o.History = history.New(1440, 10)
		o.Now = func() time.Time { return now }
	})
	for i, id := range []string{"ns/fn 1", "a%41", "plain"} {
		body := fmt.Sprintf(`{"observations":[{"id":%q,"minute":"2026-11-27T11:59:00Z","count":%d}]}`, id, i+1)
		if code, b := post(t, ts.URL+"/v1/observe", body); code != http.StatusOK {
			t.Fatalf("push %q: %d %s", id, code, b)
		}
	}
	for i, id := range []string{"ns/fn 1", "a%41", "plain"} {
		code, b := get(t, ts.URL+"/v1/history/"+url.PathEscape(id))
		var h server.HistoryResponse
		if code != http.StatusOK || json.Unmarshal(b, &h) != nil || h.ID != id || h.Counts[len(h.Counts)-1] != float64(i+1) {
			t.Fatalf("%q: %d %s", id, code, b)
		}
	}
}
