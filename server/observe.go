package server

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unsafe"

	"github.com/labstack/echo/v4"

	"github.com/mesp-project/mesp/funcid"
	"github.com/mesp-project/mesp/history"
)

// ObservationJSON is one function's count in one minute; Minute is the
// minute's start, RFC 3339, on a minute boundary.
type ObservationJSON struct {
	ID     string    `json:"id"`
	Minute time.Time `json:"minute"`
	Count  *float64  `json:"count"`
}

// ObserveRequest is the body of POST /v1/observe.
type ObserveRequest struct {
	Observations []ObservationJSON `json:"observations"`
}

// ObserveResponse says what a push stored: minutes set (a minute sent
// again replaces its count) and minutes older than the kept day (dropped).
type ObserveResponse struct {
	Stored    int `json:"stored"`
	Stale     int `json:"stale"`
	Functions int `json:"functions"`
}

// HistoryResponse is a function's history as the store holds it: the
// minutes before End (the current minute's start), oldest first.
type HistoryResponse struct {
	ID     string    `json:"id"`
	End    time.Time `json:"end"`
	Counts []float64 `json:"counts"`
}

// handleHistory answers what the store holds for one function: what
// /v1/prewarm would be sent for it now, and what the scaler decides from.
func (s *Server) handleHistory(c echo.Context) error {
	if s.opts.History == nil {
		return echo.NewHTTPError(http.StatusNotFound, "no history store in this server")
	}
	end := s.now().Unix() / 60
	// From the escaped path, unescaped once: the router may hand over the
	// segment escaped ("ns%2Ffn") or not ("a%41" for the id "a%41").
	id, err := url.PathUnescape(strings.TrimPrefix(c.Request().URL.EscapedPath(), "/v1/history/"))
	if err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, "function id in the path: "+err.Error())
	}
	if err := s.opts.Shard.Check(id); err != nil {
		return err
	}
	counts, err := s.opts.History.Window(id, end)
	if errors.Is(err, history.ErrUnknown) {
		return echo.NewHTTPError(http.StatusNotFound, err.Error())
	}
	if err != nil {
		return err
	}
	if counts == nil {
		counts = []float64{}
	}
	return c.JSON(http.StatusOK, HistoryResponse{ID: id, End: time.Unix(end*60, 0).UTC(), Counts: counts})
}

func (s *Server) now() time.Time {
	if s.opts.Now != nil {
		return s.opts.Now()
	}
	return time.Now()
}

// handleObserve stores pushed per-minute counts in the history. The whole
// batch is checked before anything is stored (here what only HTTP knows:
// the clock and the JSON; the store checks the rest), so a bad
// observation stores nothing.
func (s *Server) handleObserve(c echo.Context) error {
	if s.opts.History == nil {
		return echo.NewHTTPError(http.StatusNotFound, "no history store in this server")
	}
	mem := getRequestMemory()
	defer putRequestMemory(mem)
	release, err := s.readBody(c, mem)
	defer release()
	if err != nil {
		return err
	}
	d := &requestDecoder{b: mem.body.Bytes()}
	obs, err := d.observations(s.opts.MaxBatch*1440, s.now().Unix()/60)
	if err != nil {
		return fmt.Errorf("%w: %w", history.ErrInvalid, err)
	}
	for i, o := range obs { // the whole batch, before anything is stored
		if i == 0 || o.ID != obs[i-1].ID {
			if err := s.opts.Shard.Check(o.ID); err != nil {
				return fmt.Errorf("observation %d: %w: nothing stored", i, err)
			}
		}
	}
	// A push is work like a forecast's: a day of one function's minutes
	// takes one function of the in-flight budget.
	done, err := s.admit((len(obs) + 1439) / 1440)
	if err != nil {
		return err
	}
	defer done()
	stored, stale, err := s.opts.History.Observe(obs)
	if errors.Is(err, history.ErrFull) {
		return fmt.Errorf("after %d stored: %w", stored, err)
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, ObserveResponse{Stored: stored, Stale: stale, Functions: s.opts.History.Len()})
}

// observations scans an ObserveRequest ({"observations": [{"id",
// "minute", "count"}, ...]}) with the forecast routes' scanner: at most
// maxObs observations, each checked as it is read (a count present and a
// number, a minute's start in RFC 3339 no later than the current minute),
// so a hostile body stops at its first bad element instead of being
// decoded whole. The store checks the ids and counts.
func (d *requestDecoder) observations(maxObs int, current int64) ([]history.Observation, error) {
	// Every observation takes at least 48 bytes of JSON: room for all of
	// them at once costs less than the body, and nothing while growing.
	obs := make([]history.Observation, 0, min(maxObs, len(d.b)/48+1))
	seen := false
	sc := &observationScan{d: d, current: current}
	field := sc.field // one closure for the whole body, not one per element
	err := d.object(func(key string) error {
		if key != "observations" {
			return d.errorf("unknown field %q (known: observations)", key)
		}
		seen = true
		return d.array(func(n int) error {
			if n >= maxObs {
				return d.errorf("more than %d observations in one request", maxObs)
			}
			sc.prev = sc.o.ID
			sc.o, sc.have = history.Observation{}, 0
			if err := d.object(field); err != nil {
				return fmt.Errorf("observation %d: %w", n, err)
			}
			if err := sc.complete(); err != nil {
				return fmt.Errorf("observation %d: %w", n, err)
			}
			obs = append(obs, sc.o)
			return nil
		})
	})
	switch {
	case err != nil:
		return nil, fmt.Errorf("body: %w", err)
	case d.peek() != 0:
		return nil, d.errorf("trailing data after the JSON object")
	case !seen || len(obs) == 0:
		return nil, errors.New("no observations")
	}
	return obs, nil
}

// observationScan is the state of scanning one observation.
type observationScan struct {
	d       *requestDecoder
	current int64
	o       history.Observation
	have    int // bits: 1 id, 2 minute, 4 count
	// prev is the id before: a push holds a function's minutes one after
	// another, and they share one copy of its id.
	prev string
}

func (sc *observationScan) field(key string) error {
	d := sc.d
	switch key {
	case "id":
		id, err := d.stringLike(sc.prev)
		if err != nil {
			return err
		}
		sc.o.ID, sc.have = id, sc.have|1
	case "minute":
		raw, err := d.plainString()
		if err != nil {
			return fmt.Errorf("minute: %w", err)
		}
		t, perr := time.Parse(time.RFC3339, unsafe.String(unsafe.SliceData(raw), len(raw)))
		switch {
		case perr != nil || t.Unix()%60 != 0 || t.Nanosecond() != 0:
			return fmt.Errorf("minute %s, want the minute's start (RFC 3339, seconds 0)", funcid.Short(string(raw)))
		case t.Unix()/60 > sc.current:
			return fmt.Errorf("minute %s is in the future", t.UTC().Format(time.RFC3339))
		}
		sc.o.Minute, sc.have = t.Unix()/60, sc.have|2
	case "count":
		if d.literal("null") {
			return errors.New("count is null, want a number")
		}
		v, err := d.number()
		if err != nil {
			return err
		}
		sc.o.Count, sc.have = v, sc.have|4
	default:
		return d.errorf("unknown field %q (known: id, minute, count)", key)
	}
	return nil
}

func (sc *observationScan) complete() error {
	switch {
	case sc.have&1 == 0:
		return errors.New("id is missing")
	case sc.have&2 == 0:
		return fmt.Errorf("%s: minute is missing", funcid.Short(sc.o.ID))
	case sc.have&4 == 0:
		return fmt.Errorf("%s: count is missing", funcid.Short(sc.o.ID))
	}
	return nil
}
