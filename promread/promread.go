// Package promread feeds MESP's per-function history from Prometheus: one
// PromQL query per function, read with the HTTP API's query_range at a
// one-minute step, backfilled over a whole day on start (a restart loses
// nothing Prometheus holds) and refreshed every minute.
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
	"strconv"
	"strings"
	"time"

	"github.com/mesp-project/mesp/history"
)

// NamePlaceholder is replaced by the function's name in Query.
const NamePlaceholder = "$name"

// Reader reads one series per function into a history store.
//
// A sample at time T (a minute boundary) is the count of the minute that
// ended at T, [T-60s, T): what `sum(increase(<counter>{function="$name"}[1m]))`
// evaluates at T. Minutes Prometheus has no sample for are not written.
type Reader struct {
	URL       string   // Prometheus base URL, e.g. http://prometheus:9090
	Query     string   // PromQL with $name for the function
	Functions []string // function names, as $name takes them
	Store     *history.Store
	Client    *http.Client
	Log       *slog.Logger
	// Refresh is how many recent minutes each refresh re-reads (late
	// samples, a missed refresh); 0: 5.
	Refresh int
}

// Backfill reads the last day (the store's length) up to the minute that
// ends at now, for every function.
func (r *Reader) Backfill(ctx context.Context, now time.Time) error {
	return r.read(ctx, now, r.Store.Length())
}

// Run backfills, then refreshes every interval until ctx ends. Failures
// are logged; a failed backfill is tried again at the next tick (until one
// succeeds, a restart has lost nothing Prometheus holds), a failed refresh
// is made good by the next, which reads the same recent minutes.
func (r *Reader) Run(ctx context.Context, every time.Duration) {
	backfilled := false
	t := time.NewTicker(every)
	defer t.Stop()
	now := time.Now()
	for {
		n := r.Refresh
		if n <= 0 {
			n = 5
		}
		if !backfilled {
			n = r.Store.Length()
		}
		err := r.read(ctx, now, n)
		switch {
		case err == nil:
			if !backfilled && r.Log != nil {
				r.Log.Info("history backfilled from prometheus", "functions", len(r.Functions), "minutes", n)
			}
			backfilled = true
		case r.Log != nil:
			r.Log.Warn("reading prometheus failed", "backfill", !backfilled, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case now = <-t.C:
		}
	}
}

// read reads the last minutes ending at now's minute, every function.
func (r *Reader) read(ctx context.Context, now time.Time, minutes int) error {
	end := now.Unix() / 60 // samples at end*60 close minute end-1
	var errs []error
	for _, name := range r.Functions {
		obs, err := r.fetch(ctx, name, end-int64(minutes)+1, end)
		if err == nil {
			_, _, err = r.Store.Observe(obs)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("function %q: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// fetch runs the function's query over sample times from..to (Unix
// minutes, inclusive).
func (r *Reader) fetch(ctx context.Context, name string, from, to int64) ([]history.Observation, error) {
	q := url.Values{}
	q.Set("query", strings.ReplaceAll(r.Query, NamePlaceholder, name))
	q.Set("start", strconv.FormatInt(from*60, 10))
	q.Set("end", strconv.FormatInt(to*60, 10))
	q.Set("step", "60")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(r.URL, "/")+"/api/v1/query_range?"+q.Encode(), nil)
	if err != nil {
		return nil, fmt.Errorf("promread: %w", err)
	}
	client := r.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("promread: %w", err)
	}
	defer resp.Body.Close()
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
	var obs []history.Observation
	for _, v := range out.Data.Result[0].Values {
		var ts float64
		var s string
		if err := json.Unmarshal(v[0], &ts); err != nil {
			return nil, fmt.Errorf("promread: sample time %s: %w", v[0], err)
		}
		if err := json.Unmarshal(v[1], &s); err != nil {
			return nil, fmt.Errorf("promread: sample value %s: %w", v[1], err)
		}
		c, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("promread: sample value %q: %w", s, err)
		}
		obs = append(obs, history.Observation{ID: name, Minute: int64(ts)/60 - 1, Count: c})
	}
	return obs, nil
}
