package server_test

import (
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

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

// TestScanStopsAtTheLimits: a body of 300,000 empty objects, or one
// function with 300,000 counts, is refused while scanning, without
// decoding the rest (memory stays small).
func TestScanStopsAtTheLimits(t *testing.T) {
	ts := startWith(t, func(o *server.Options) { o.MaxBodyBytes = 8 << 20 })
	for name, body := range map[string]string{
		"functions": `{"functions":[` + strings.Repeat(`{},`, 300000) + `{}]}`,
		"counts":    `{"counts":[` + strings.Repeat(`1,`, 300000) + `1]}`,
	} {
		t.Run(name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			code, resp := post(t, ts.URL+"/v1/forecast", body)
			runtime.ReadMemStats(&after)
			if code != http.StatusBadRequest || !strings.Contains(string(resp), "more than") {
				t.Fatalf("%d %s", code, resp)
			}
			// The body itself is about 1 MB; decoding everything took
			// 15 MB (functions) and 2.4 MB (counts) more.
			if got := after.TotalAlloc - before.TotalAlloc; got > 6<<20 {
				t.Fatalf("allocated %d KiB to refuse it", got>>10)
			}
		})
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
