package server_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mesp-project/mesp/history"
	"github.com/mesp-project/mesp/server"
)

// TestTricklingClientsDoNotReserveTheirAnnouncedBodies: 40 connections
// each announce a 30 MiB body and send a few bytes; the server must not
// reserve the announced size for each (it did: 1.2 GB here).
func TestTricklingClientsDoNotReserveTheirAnnouncedBodies(t *testing.T) {
	ts := startWith(t, func(o *server.Options) { o.MaxBodyBytes = 32 << 20 })
	addr := strings.TrimPrefix(ts.URL, "http://")
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	var conns []net.Conn
	for range 40 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		fmt.Fprintf(c, "POST /v1/forecast HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{\"counts\":[1,", 30<<20)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	time.Sleep(500 * time.Millisecond) // every handler is reading its body
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	if grown > 200<<20 {
		t.Fatalf("40 trickling clients grew the heap by %d MiB", grown>>20)
	}
}

// TestScanStopsAtTheLimits: on every route that takes a body, a body of
// hundreds of thousands of empty objects or numbers is refused while
// scanning, without decoding the rest (memory stays small). observe and
// KServe V2 decoded whole bodies with encoding/json: 32 MiB of {} took
// their RSS to 2.1 and 3.0 GB.
func TestScanStopsAtTheLimits(t *testing.T) {
	ts := startWith(t, func(o *server.Options) {
		o.MaxBodyBytes = 8 << 20
		o.History = history.New(1440, 100)
	})
	many := func(item string) string { return strings.Repeat(item+",", 300000) + item }
	obs := `{"id":"f","minute":"2026-01-01T00:00:00Z","count":1}`
	for _, c := range []struct{ name, path, body, want string }{
		{"forecast functions", "/v1/forecast", `{"functions":[` + many(`{}`) + `]}`, "more than"},
		{"forecast counts", "/v1/forecast", `{"counts":[` + many(`1`) + `]}`, "more than"},
		{"prewarm functions", "/v1/prewarm", `{"functions":[` + many(`{}`) + `]}`, "more than"},
		{"observe empty objects", "/v1/observe", `{"observations":[` + many(`{}`) + `]}`, "id is missing"},
		{"observe more than a batch of days", "/v1/observe", `{"observations":[` + strings.Repeat(obs+",", 64*1440) + obs + `]}`, "more than"},
		{"V2 empty inputs", "/v2/models/mesp/infer", `{"inputs":[` + many(`{}`) + `]}`, "exactly one input"},
		{"V2 flat data", "/v2/models/mesp/infer", `{"inputs":[{"name":"counts","data":[` + many(`1`) + `]}]}`, "more than"},
		{"V2 nested data", "/v2/models/mesp/infer", `{"inputs":[{"name":"counts","data":[` + many(`[1]`) + `]}]}`, "more than"},
		{"V2 deep parameters", "/v2/models/mesp/infer", `{"parameters":` + strings.Repeat(`[`, 100000) + `]}`, "deep"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			code, resp := post(t, ts.URL+c.path, c.body)
			runtime.ReadMemStats(&after)
			if code != http.StatusBadRequest || !strings.Contains(string(resp), c.want) {
				t.Fatalf("%d %.300s", code, resp)
			}
			// Reading the body (client and server in this process, the
			// buffer doubling as bytes come) and the decoded observations
			// take up to about 4 times its size; decoding the forecast
			// bodies whole took 15 MB (functions) and 2.4 MB (counts) more,
			// observe's and V2's hundreds of MB.
			if got := after.TotalAlloc - before.TotalAlloc; got > 4*uint64(len(c.body))+6<<20 {
				t.Fatalf("allocated %d KiB to refuse a body of %d KiB", got>>10, len(c.body)>>10)
			}
		})
	}
}

// TestBodyBudgetAnswers503: request bodies held at once are bounded over
// all routes: while one client holds most of the budget with a slow body,
// another's body is refused with 503 and Retry-After before it is
// decoded, and the budget comes back once the first is answered.
func TestBodyBudgetAnswers503(t *testing.T) {
	ts := startWith(t, func(o *server.Options) {
		o.MaxInflightBodyBytes = 64 << 10
		o.History = history.New(1440, 100)
	})
	pr, pw := io.Pipe()
	first := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, ts.URL+"/v1/forecast", pr)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			first <- 0
			return
		}
		resp.Body.Close()
		first <- resp.StatusCode
	}()
	head := `{"counts":[` + strings.Repeat("1,", 25<<10)
	if _, err := io.WriteString(pw, head); err != nil { // 50 KiB held
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the server has read it
	big := `{"inputs":[{"name":"counts","shape":[1,1440],"datatype":"FP32","data":` + strings.Repeat(" ", 20<<10) + day(1, 1440) + `}]}`
	for _, path := range []string{"/v1/prewarm", "/v1/observe", "/v2/models/mesp/infer"} {
		body := big
		if path != "/v2/models/mesp/infer" {
			body = `{"id":"f","counts":` + strings.Repeat(" ", 20<<10) + day(1, 1440) + `}`
		}
		resp, err := http.Post(ts.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(b), "retry") {
			t.Fatalf("%s while the budget is held: %d %s", path, resp.StatusCode, b)
		}
	}
	io.WriteString(pw, "1]}")
	pw.Close()
	if code := <-first; code != http.StatusBadRequest { // 25,601 counts: more than a day, refused, but answered
		t.Fatalf("the slow body: %d", code)
	}
	if code, b := post(t, ts.URL+"/v2/models/mesp/infer", big); code != http.StatusOK {
		t.Fatalf("after the budget came back: %d %.300s", code, b)
	}
	_, metrics := get(t, ts.URL+"/metrics")
	if !strings.Contains(string(metrics), `mesp_requests_rejected_total{reason="body_budget"} 3`) {
		t.Fatalf("refusals not counted: %s", grepLines(string(metrics), "rejected"))
	}
}

// TestAdmissionControlAnswers503: with a budget of 64 functions in
// flight, concurrent 64-function requests are partly refused with 503,
// Retry-After and a JSON error, and counted; every other one succeeds.
func TestAdmissionControlAnswers503(t *testing.T) {
	ts := startWith(t, func(o *server.Options) { o.MaxInflightFunctions = 64 })
	body := batchBody(fixtureRows(t, 64), 1440)
	var mu sync.Mutex
	codes := map[int]int{}
	retryAfter := 0
	var wg sync.WaitGroup
	for range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodPost, ts.URL+"/v1/forecast", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			mu.Lock()
			codes[resp.StatusCode]++
			if resp.Header.Get("Retry-After") != "" {
				retryAfter++
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if codes[http.StatusServiceUnavailable] == 0 || codes[http.StatusOK] == 0 || codes[200]+codes[503] != 12 {
		t.Fatalf("status counts %v", codes)
	}
	if retryAfter != codes[http.StatusServiceUnavailable] {
		t.Fatalf("%d of %d refusals had Retry-After", retryAfter, codes[503])
	}
	_, metrics := get(t, ts.URL+"/metrics")
	if !strings.Contains(string(metrics), fmt.Sprintf(`mesp_requests_rejected_total{reason="overload"} %d`, codes[503])) {
		t.Fatalf("rejections not counted: %s", grepLines(string(metrics), "rejected"))
	}
}

// TestRepliesPastTheWriteTimeoutAreCountedAsDropped: with a write timeout
// shorter than the work, the client gets no answer, and metrics say
// dropped, not 200.
func TestRepliesPastTheWriteTimeoutAreCountedAsDropped(t *testing.T) {
	ts := startWith(t, func(o *server.Options) { o.WriteTimeout = 20 * time.Millisecond })
	body := batchBody(fixtureRows(t, 64), 1440)
	req, _ := http.NewRequest(http.MethodPost, ts.URL+"/v1/forecast", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Skip("the machine answered 64 functions within 20 ms: nothing was dropped")
		}
	}
	time.Sleep(100 * time.Millisecond)
	_, metrics := get(t, ts.URL+"/metrics")
	m := string(metrics)
	if !strings.Contains(m, "mesp_responses_dropped_total 1") || strings.Contains(m, `route="/v1/forecast",status="200"`) {
		t.Fatalf("a dropped reply counted wrongly: %s", grepLines(m, "dropped", "/v1/forecast"))
	}
}

func grepLines(s string, subs ...string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		for _, sub := range subs {
			if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") {
				out = append(out, l)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

// TestEveryBodyRouteRefusesCrossSitePosts: a browser sends text/plain and
// form posts cross-site without asking; no route that takes a body may
// run the models, write the OOD log or the history for one (KServe V2
// answered 200).
func TestEveryBodyRouteRefusesCrossSitePosts(t *testing.T) {
	ts := startWith(t, func(o *server.Options) { o.History = history.New(1440, 10) })
	v1 := `{"id":"f","counts":` + day(1, 1440) + `}`
	bodies := map[string]string{
		"/v1/forecast":          v1,
		"/v1/prewarm":           v1,
		"/v1/observe":           `{"observations":[{"id":"f","minute":"2026-01-01T00:00:00Z","count":1}]}`,
		"/v2/models/mesp/infer": `{"inputs":[{"name":"counts","shape":[1,1440],"datatype":"FP32","data":` + day(1, 1440) + `}]}`,
	}
	for path, body := range bodies {
		for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"} {
			code, b := post(t, ts.URL+path, body, "Content-Type", ct)
			if code != http.StatusUnsupportedMediaType || !strings.Contains(string(b), "application/json") {
				t.Errorf("%s as %q: %d %.200s", path, ct, code, b)
			}
		}
		// A page posting a typeless Blob: no Content-Type, but Origin.
		for _, h := range [][]string{{"Origin", "https://elsewhere.example"}, {"Sec-Fetch-Mode", "no-cors"}} {
			if code, b := post(t, ts.URL+path, body, "Content-Type", "", h[0], h[1]); code != http.StatusUnsupportedMediaType {
				t.Errorf("%s without a type from a browser (%s): %d %.200s", path, h[0], code, b)
			}
		}
		if code, b := post(t, ts.URL+path, body); code != http.StatusOK {
			t.Errorf("%s as application/json: %d %.200s", path, code, b)
		}
		// KServe clients (tritonclient) send no Content-Type and no Origin.
		if code, b := post(t, ts.URL+path, body, "Content-Type", ""); code != http.StatusOK {
			t.Errorf("%s without a type from a program: %d %.200s", path, code, b)
		}
	}
}

// TestSingleRequestsAreAdmittedByTheirCost: a request costs its
// functions plus a fixed share (decoding, routing, one model run per
// model however small the batch), so a flood of single-function requests
// meets the in-flight budget long before it holds as many requests as the
// budget has functions: it queued 4-8 s of single requests before the
// first 503.
func TestSingleRequestsAreAdmittedByTheirCost(t *testing.T) {
	f := &fakeModels{reloadOK: true, block: make(chan struct{})}
	srv := server.New(f, server.Options{MaxBatch: 8, MaxBodyBytes: 1 << 20, MaxInflightFunctions: 64,
		ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second})
	srv.Reload("start")
	url := serve(t, srv)
	body := `{"id":"f","counts":` + day(1, 300) + `}`
	codes := make(chan int, 20)
	for range 20 {
		go func() {
			code, _ := post(t, url+"/v1/forecast", body)
			codes <- code
		}()
	}
	refused := 0
	for deadline := time.After(5 * time.Second); refused < 20-64/(1+server.RequestCost); {
		select {
		case code := <-codes:
			if code != http.StatusServiceUnavailable {
				t.Fatalf("a request answered %d while the models are held", code)
			}
			refused++
		case <-deadline:
			t.Fatalf("%d of 20 single requests refused while 20 were held, want %d", refused, 20-64/(1+server.RequestCost))
		}
	}
	close(f.block)
	for range 20 - refused {
		if code := <-codes; code != http.StatusOK {
			t.Fatalf("an admitted request: %d", code)
		}
	}
}
