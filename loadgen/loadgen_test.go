package loadgen

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

func TestRun(t *testing.T) {
	var served atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if served.Add(1)%4 == 0 {
			http.Error(w, `{"message":"no"}`, http.StatusBadRequest)
			return
		}
		w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	cases := []struct {
		name           string
		opts           Options
		minReq, maxReq int
	}{
		// The open loop sends on schedule, catching up when late: 200/s
		// for 0.5 s is 100 sends whatever the scheduler does.
		{"open loop", Options{Rate: 200, Duration: 500 * time.Millisecond}, 95, 106},
		{"closed loop", Options{Concurrency: 2, Duration: 300 * time.Millisecond}, 4, 1 << 30},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			served.Store(0)
			o := tc.opts
			o.URL, o.Bodies, o.Rows = srv.URL, [][]byte{[]byte(`{}`)}, 3
			s, err := Run(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			total := s.Requests + s.Errors
			if total < tc.minReq || total > tc.maxReq {
				t.Fatalf("%d requests sent, want %d..%d", total, tc.minReq, tc.maxReq)
			}
			if int64(total) != served.Load() {
				t.Fatalf("stats count %d requests, server saw %d", total, served.Load())
			}
			if want := int(served.Load() / 4); s.Errors != want {
				t.Fatalf("%d errors, want %d (every 4th answer is a 400)", s.Errors, want)
			}
			if s.P50 <= 0 || s.P99 < s.P50 || s.ForecastsPS != 3*s.RequestsPS {
				t.Fatalf("stats %+v", s)
			}
		})
	}
}

func TestRunNeedsBodies(t *testing.T) {
	if _, err := Run(context.Background(), Options{URL: "http://127.0.0.1:1"}); err == nil {
		t.Fatal("no bodies: want an error")
	}
}
