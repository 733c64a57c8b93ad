package server_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mesp-project/mesp/history"
	"github.com/mesp-project/mesp/server"
	"github.com/mesp-project/mesp/shard"
)

// TestReplicasKeepOnlyTheirOwnFunctions: three in-process replicas; a
// platform client pushes each function to the replica shard.Owner names,
// and each replica then holds exactly its share of 3,000 functions; a push
// holding another replica's function is refused whole (421, naming the
// owner, nothing stored), and so is a history read of it.
func TestReplicasKeepOnlyTheirOwnFunctions(t *testing.T) {
	const replicas, n = 3, 3000
	now := time.Unix(29_000_000*60+30, 0)
	type replica struct {
		srv   *server.Server
		store *history.Store
	}
	rs := make([]replica, replicas)
	for i := range rs {
		rs[i].store = history.New(1440, n)
		rs[i].srv = server.New(&fakeModels{reloadOK: true}, server.Options{MaxBatch: 8, History: rs[i].store,
			Now: func() time.Time { return now }, Shard: shard.Shard{Index: i, Replicas: replicas}})
	}
	do := func(r replica, method, path, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.RemoteAddr = "127.0.0.1:5000"
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		r.srv.Echo().ServeHTTP(rec, req)
		return rec
	}
	push := func(id string) string {
		return fmt.Sprintf(`{"observations":[{"id":%q,"minute":%q,"count":1}]}`, id, now.Add(-time.Minute).Truncate(time.Minute).UTC().Format(time.RFC3339))
	}
	for i := range n {
		id := fmt.Sprintf("ns/fn-%d", i)
		if rec := do(rs[shard.Owner(id, replicas)], http.MethodPost, "/v1/observe", push(id)); rec.Code != http.StatusOK {
			t.Fatalf("%s to its owner: %d %s", id, rec.Code, rec.Body)
		}
	}
	total := 0
	for i, r := range rs {
		total += r.store.Len()
		if r.store.Len() < n/replicas*9/10 {
			t.Errorf("replica %d holds %d of %d", i, r.store.Len(), n)
		}
		for _, id := range r.store.IDs() {
			if shard.Owner(id, replicas) != i {
				t.Fatalf("replica %d holds %s, owned by %d", i, id, shard.Owner(id, replicas))
			}
		}
	}
	if total != n {
		t.Fatalf("%d functions held over the replicas, want %d (each once)", total, n)
	}
	// replica 0's own function and one of replica 1 or 2 in one push to
	// replica 0: refused whole
	var foreign, own string
	for i := 0; foreign == "" || own == ""; i++ {
		id := fmt.Sprintf("new-%d", i)
		if shard.Owner(id, replicas) != 0 {
			foreign = id
		} else {
			own = id
		}
	}
	before := rs[0].store.Len()
	body := `{"observations":[{"id":"` + own + `","minute":"` + now.Add(-time.Minute).Truncate(time.Minute).UTC().Format(time.RFC3339) + `","count":1},` +
		strings.TrimPrefix(push(foreign), `{"observations":[`)
	rec := do(rs[0], http.MethodPost, "/v1/observe", body)
	want := fmt.Sprintf("belongs to replica %d", shard.Owner(foreign, replicas))
	if rec.Code != http.StatusMisdirectedRequest || !strings.Contains(rec.Body.String(), want) || rs[0].store.Len() != before {
		t.Fatalf("a foreign function pushed: %d %s (held %d -> %d), want 421 naming replica %d and nothing stored",
			rec.Code, rec.Body, before, rs[0].store.Len(), shard.Owner(foreign, replicas))
	}
	if rec := do(rs[0], http.MethodGet, "/v1/history/"+foreign, ""); rec.Code != http.StatusMisdirectedRequest || !strings.Contains(rec.Body.String(), want) {
		t.Fatalf("a foreign function's history: %d %s", rec.Code, rec.Body)
	}
}
