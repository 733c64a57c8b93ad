// Package loadgen drives an HTTP forecast endpoint on loopback and reports
// throughput and latency percentiles (for `make bench-serve`).
package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Options of one load run.
type Options struct {
	URL string
	// Bodies are sent round-robin; Rows is the functions per body.
	Bodies [][]byte
	Rows   int
	// Rate > 0: open loop at that many requests/s (latency under a fixed
	// load); Rate 0: closed loop with Concurrency callers (max throughput).
	// The open loop keeps an absolute schedule (a late tick sends at once
	// to catch up, so the rate holds) and every request has its own
	// goroutine, so a slow answer never delays the next send (no
	// coordinated omission). Latency counts from the actual send: the
	// runtime's timers wake up to a millisecond late, and that is the load
	// generator's delay, not the server's.
	Rate        float64
	Concurrency int
	Duration    time.Duration
}

// Stats of one run.
type Stats struct {
	Requests    int     `json:"requests"`
	Errors      int     `json:"errors"`
	RequestsPS  float64 `json:"requests_per_s"`
	ForecastsPS float64 `json:"forecasts_per_s"`
	P50         float64 `json:"p50_ms"`
	P99         float64 `json:"p99_ms"`
}

// Run executes the load and returns its stats.
func Run(ctx context.Context, o Options) (Stats, error) {
	if len(o.Bodies) == 0 {
		return Stats{}, fmt.Errorf("loadgen: no request bodies")
	}
	tr := &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024}
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	defer tr.CloseIdleConnections()
	var mu sync.Mutex
	var lat []time.Duration
	var errs, next atomic.Int64
	do := func() {
		body := o.Bodies[int(next.Add(1))%len(o.Bodies)]
		t0 := time.Now()
		resp, err := client.Post(o.URL, "application/json", bytes.NewReader(body))
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
		}
		d := time.Since(t0)
		if err != nil {
			errs.Add(1)
			return
		}
		mu.Lock()
		lat = append(lat, d)
		mu.Unlock()
	}
	ctx, cancel := context.WithTimeout(ctx, o.Duration)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	if o.Rate > 0 {
		interval := time.Duration(float64(time.Second) / o.Rate)
		timer := time.NewTimer(0)
		defer timer.Stop()
	loop:
		for i := 0; ; i++ {
			at := start.Add(time.Duration(i) * interval)
			if wait := time.Until(at); wait > 0 {
				timer.Reset(wait)
				select {
				case <-ctx.Done():
					break loop
				case <-timer.C:
				}
			} else if ctx.Err() != nil {
				break loop
			}
			wg.Add(1)
			go func() { defer wg.Done(); do() }()
		}
	} else {
		for range max(1, o.Concurrency) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					do()
				}
			}()
		}
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	s := Stats{Requests: len(lat), Errors: int(errs.Load()), RequestsPS: float64(len(lat)) / elapsed}
	s.ForecastsPS = s.RequestsPS * float64(o.Rows)
	s.P50, s.P99 = Percentiles(lat)
	return s, nil
}

// Percentiles are the p50 and p99 of answer times, in milliseconds (0 for
// none); lat is sorted in place.
func Percentiles(lat []time.Duration) (p50, p99 float64) {
	if len(lat) == 0 {
		return 0, 0
	}
	slices.Sort(lat)
	return ms(lat[len(lat)/2]), ms(lat[min(len(lat)-1, len(lat)*99/100)])
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
