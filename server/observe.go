package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

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
	counts, err := s.opts.History.Window(c.Param("id"), end)
	if errors.Is(err, history.ErrUnknown) {
		return echo.NewHTTPError(http.StatusNotFound, err.Error())
	}
	if err != nil {
		return err
	}
	if counts == nil {
		counts = []float64{}
	}
	return c.JSON(http.StatusOK, HistoryResponse{ID: c.Param("id"), End: time.Unix(end*60, 0).UTC(), Counts: counts})
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
	if err := requireJSON(c.Request()); err != nil {
		return err
	}
	var req ObserveRequest
	dec := json.NewDecoder(c.Request().Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return fmt.Errorf("%w: body: %v", history.ErrInvalid, err)
	}
	if len(req.Observations) == 0 {
		return fmt.Errorf("%w: no observations", history.ErrInvalid)
	}
	if len(req.Observations) > s.opts.MaxBatch*1440 {
		return fmt.Errorf("%w: %d observations, at most %d per request", history.ErrInvalid, len(req.Observations), s.opts.MaxBatch*1440)
	}
	current := s.now().Unix() / 60
	obs := make([]history.Observation, len(req.Observations))
	for i, o := range req.Observations {
		switch {
		case o.Count == nil:
			return fmt.Errorf("%w: observation %d (%q): count is missing or null", history.ErrInvalid, i, o.ID)
		case o.Minute.IsZero() || o.Minute.Unix()%60 != 0 || o.Minute.Nanosecond() != 0:
			return fmt.Errorf("%w: observation %d (%q): minute %q, want the minute's start (RFC 3339, seconds 0)", history.ErrInvalid, i, o.ID, o.Minute.Format(time.RFC3339Nano))
		case o.Minute.Unix()/60 > current:
			return fmt.Errorf("%w: observation %d (%q): minute %s is in the future", history.ErrInvalid, i, o.ID, o.Minute.UTC().Format(time.RFC3339))
		}
		obs[i] = history.Observation{ID: o.ID, Minute: o.Minute.Unix() / 60, Count: *o.Count}
	}
	stored, stale, err := s.opts.History.Observe(obs)
	if errors.Is(err, history.ErrFull) {
		return fmt.Errorf("after %d stored: %w", stored, err)
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, ObserveResponse{Stored: stored, Stale: stale, Functions: s.opts.History.Len()})
}
