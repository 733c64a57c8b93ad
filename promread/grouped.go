package promread

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/mesp-project/mesp/funcid"
)

// A fleet is read with one query, not one per function: a Query without
// $name (e.g. `sum by (function) (increase(invocations_total[1m]))`)
// answers every function's series, each named by its Label. A refresh
// costs one query whatever the number of functions (100,000 functions were
// 100,000 queries a minute), new functions are discovered from the
// answer, and the day's backfill is read in slices of Slice minutes, each
// answer decoded series by series, so that memory stays bounded by one
// slice.

// Grouped reports whether the reader runs one query for the fleet (its
// Query has no $name).
func (r *Reader) Grouped() bool { return !strings.Contains(r.Query, NamePlaceholder) }

func (r *Reader) label() string {
	if r.Label == "" {
		return "function"
	}
	return r.Label
}

func (r *Reader) slice() int64 {
	if r.Slice <= 0 {
		return 60
	}
	return int64(r.Slice)
}

func (r *Reader) maxBody() int64 {
	if r.MaxBody <= 0 {
		return 256 << 20
	}
	return r.MaxBody
}

// wants reports whether a discovered function is read: every one, or
// those Functions lists, or those Match matches, and only this replica's
// (Owns).
func (r *Reader) wants(name string) bool {
	if len(r.Functions) > 0 && !r.configured(name) || r.Owns != nil && !r.Owns(name) {
		return false
	}
	return r.Match == nil || r.Match.MatchString(name)
}

// readGrouped reads every function from the fleet's last success (less
// Refresh minutes, for late samples) or the whole day, up to sample time
// end, one query per slice; a failed slice ends the read, and the next
// one starts from the last slice read.
func (r *Reader) readGrouped(ctx context.Context, now time.Time) error {
	refresh := int64(r.Refresh)
	if refresh <= 0 {
		refresh = 5
	}
	end := now.Unix() / 60
	from := end - int64(r.Store.Length()) + 1
	r.mu.Lock()
	if r.groupOK > 0 {
		from = max(from, r.groupOK-refresh+1)
	}
	r.mu.Unlock()
	defer r.countStale()
	for s := from; s <= end; s += r.slice() {
		e := min(end, s+r.slice()-1)
		qctx, cancel := context.WithTimeout(ctx, r.timeout())
		start := time.Now()
		err := r.fetchGrouped(qctx, s, e)
		cancel()
		r.m.duration.Observe(time.Since(start).Seconds())
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			r.m.queries.WithLabelValues("timeout").Inc()
			return fmt.Errorf("promread: the fleet's minutes %d..%d: no answer within %s: %w", s, e, r.timeout(), err)
		case err != nil:
			r.m.queries.WithLabelValues("error").Inc()
			return fmt.Errorf("promread: the fleet's minutes %d..%d: %w", s, e, err)
		}
		r.m.queries.WithLabelValues("ok").Inc()
		r.m.lastSuccess.SetToCurrentTime()
		r.mu.Lock()
		r.groupOK, r.groupAt = e, time.Now()
		r.backfilled = r.backfilled || e == end
		r.mu.Unlock()
	}
	return nil
}

// fetchGrouped runs the fleet's query over sample times from..to and
// stores each series as it is decoded: a series without the label, with an
// id funcid refuses, or the second one of a function is refused alone, as
// is each sample outside the range asked for or not a count.
func (r *Reader) fetchGrouped(ctx context.Context, from, to int64) error {
	resp, err := r.queryRange(ctx, r.Query, from, to)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body := &limitedBody{r: resp.Body, left: r.maxBody()}
	seen := map[string]bool{}
	var refused error
	err = decodeMatrix(body, func(metric map[string]string, values [][2]json.RawMessage) {
		name := metric[r.label()]
		reason := ""
		switch {
		case name == "":
			reason, refused = "no_label", fmt.Errorf("a series without the label %q", r.label())
		case funcid.Validate(name) != nil:
			reason, refused = "bad_id", funcid.Validate(name)
		case seen[name]:
			reason, refused = "duplicate", fmt.Errorf("two series for %s: aggregate the query by %q", funcid.Short(name), r.label())
		}
		if reason != "" {
			r.m.refused.WithLabelValues(reason).Inc()
			return
		}
		seen[name] = true
		if !r.wants(name) {
			return
		}
		obs, bad := r.samples(name, values, from, to)
		if bad != nil {
			refused = bad
		}
		if _, _, err := r.Store.Observe(obs); err != nil {
			r.m.refused.WithLabelValues("store").Inc()
			refused = err
			return
		}
		newest := int64(-1)
		for _, o := range obs {
			newest = max(newest, o.Minute)
		}
		r.mu.Lock()
		r.readAt[name] = time.Now()
		if newest >= 0 {
			r.lastOK[name] = max(r.lastOK[name], newest)
		}
		r.mu.Unlock()
	})
	if body.over {
		return fmt.Errorf("the answer is over %d bytes (prometheus.max_body_bytes): read shorter slices (prometheus.slice)", r.maxBody())
	}
	if err != nil {
		return fmt.Errorf("%s answered %d: %w", r.URL, resp.StatusCode, err)
	}
	if refused != nil && r.Log != nil {
		r.Log.Warn("prometheus series or samples refused", "last", refused)
	}
	return nil
}

// limitedBody reads at most left bytes and says whether the body went on.
type limitedBody struct {
	r    io.Reader
	left int64
	over bool
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		var one [1]byte
		if n, _ := b.r.Read(one[:]); n > 0 {
			b.over = true
		}
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	return n, err
}

// decodeMatrix walks a query_range answer token by token and hands each
// series of its matrix to each as it is decoded (a fleet's day never sits
// in memory whole). A failed query's error is returned; so is any other
// result type.
func decodeMatrix(body io.Reader, each func(metric map[string]string, values [][2]json.RawMessage)) error {
	dec := json.NewDecoder(body)
	var status, queryErr, resultType string
	err := walkObject(dec, func(key string) error {
		switch key {
		case "status":
			return dec.Decode(&status)
		case "error":
			return dec.Decode(&queryErr)
		case "data":
			return walkObject(dec, func(key string) error {
				switch key {
				case "resultType":
					return dec.Decode(&resultType)
				case "result":
					if resultType != "matrix" {
						return fmt.Errorf("result before a matrix resultType (%q)", resultType)
					}
					return decodeSeries(dec, each)
				}
				return dec.Decode(&json.RawMessage{})
			})
		}
		return dec.Decode(&json.RawMessage{})
	})
	if err != nil {
		return fmt.Errorf("not the query API's JSON: %w", err)
	}
	if status != "success" {
		return fmt.Errorf("query failed: %s", queryErr)
	}
	if resultType != "matrix" {
		return fmt.Errorf("result type %q, want matrix", resultType)
	}
	return nil
}

// walkObject reads one JSON object, calling field for each key with the
// decoder at its value (which field must consume).
func walkObject(dec *json.Decoder, field func(key string) error) error {
	if err := expectDelim(dec, '{'); err != nil {
		return err
	}
	for dec.More() {
		key, err := objectKey(dec)
		if err != nil {
			return err
		}
		if err := field(key); err != nil {
			return err
		}
	}
	return expectDelim(dec, '}')
}

// decodeSeries reads the matrix's array, handing each series to each.
func decodeSeries(dec *json.Decoder, each func(map[string]string, [][2]json.RawMessage)) error {
	if err := expectDelim(dec, '['); err != nil {
		return err
	}
	for dec.More() {
		var s struct {
			Metric map[string]string    `json:"metric"`
			Values [][2]json.RawMessage `json:"values"`
		}
		if err := dec.Decode(&s); err != nil {
			return err
		}
		each(s.Metric, s.Values)
	}
	return expectDelim(dec, ']')
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	t, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := t.(json.Delim); !ok || d != want {
		return fmt.Errorf("want %q, got %v", want, t)
	}
	return nil
}

func objectKey(dec *json.Decoder) (string, error) {
	t, err := dec.Token()
	if err != nil {
		return "", err
	}
	k, ok := t.(string)
	if !ok {
		return "", fmt.Errorf("want an object key, got %v", t)
	}
	return k, nil
}
