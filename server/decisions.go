package server

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mesp-project/mesp/decide"
	"github.com/mesp-project/mesp/forecast"
)

// DecisionJSON is one function's line of GET /v1/decisions: its answer
// for the minutes from Minute on, as the table computed it once for that
// minute.
type DecisionJSON struct {
	ID     string    `json:"id"`
	Minute time.Time `json:"minute"`
	// PInvoke, Forecast and Warm cover the first `minutes` minutes ahead
	// (default 1); Warm is PInvoke >= Threshold.
	PInvoke   []float32 `json:"p_invoke"`
	Forecast  []float32 `json:"forecast"`
	Warm      []bool    `json:"warm"`
	Threshold float64   `json:"threshold"`
	// Demand is the quantile "quantile" names of each of those minutes'
	// counts (the expected count for "mean"): what a replica decision is
	// sized by; absent unless asked.
	Demand []float32 `json:"demand,omitempty"`
	// MissingMinutes is how many minutes just before Minute the history
	// did not hold when the minute was decided (late: counted as no
	// invocation); absent when complete.
	MissingMinutes int `json:"missing_minutes,omitempty"`
}

// handleDecisions streams the decision table as NDJSON, one function a
// line in id order: a platform's control loop reads every function's
// decision for the minute in one request, without a model run. Query:
// after (the last id of the previous page), limit (functions; default
// all), minutes (1..60, default 1), threshold (default the set's),
// quantile (a level the table keeps, decide.quantiles, or "mean": each
// line's demand).
// 503 until the first minute is decided.
func (s *Server) handleDecisions(c echo.Context) error {
	if s.opts.Decisions == nil {
		return echo.NewHTTPError(http.StatusNotFound, "no decision table in this server (decide.enabled false, or no history store)")
	}
	t := s.opts.Decisions.Current()
	if t == nil {
		c.Response().Header().Set("Retry-After", "10")
		return echo.NewHTTPError(http.StatusServiceUnavailable, "no minute decided yet")
	}
	q := c.QueryParams()
	minutes, err := intParam(q.Get("minutes"), 1, 1, 60)
	if err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, "minutes: "+err.Error())
	}
	limit, err := intParam(q.Get("limit"), len(t.IDs), 1, 1<<30)
	if err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, "limit: "+err.Error())
	}
	th := 0.0
	if cat, ok := s.models.Catalog(); ok {
		th = cat.PrewarmThreshold()
	}
	if v := q.Get("threshold"); v != "" {
		if th, err = strconv.ParseFloat(v, 64); err != nil || !(th >= 0 && th <= 1) {
			return echo.NewHTTPError(http.StatusBadRequest, "threshold "+strconv.Quote(v)+": want a probability in [0, 1]")
		}
	}
	if !(th > 0) {
		return echo.NewHTTPError(http.StatusConflict, "the models in service have no default pre-warm threshold: give threshold")
	}
	// the demand's level: "mean", or one the table keeps (Mean: none asked)
	level, demand := 0.0, q.Get("quantile")
	if demand != "" && demand != "mean" {
		if level, err = strconv.ParseFloat(demand, 64); err != nil || !slices.Contains(keptLevels(t), level) {
			return echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf("quantile %q: want \"mean\" or a level the table keeps (decide.quantiles): %v", demand, keptLevels(t)))
		}
	}
	from := sort.SearchStrings(t.IDs, q.Get("after"))
	if from < len(t.IDs) && q.Get("after") != "" && t.IDs[from] == q.Get("after") {
		from++
	}
	w := c.Response()
	w.Header().Set(echo.HeaderContentType, "application/x-ndjson")
	w.Header().Set("X-Decisions-Minute", time.Unix(t.Minute*60, 0).UTC().Format(time.RFC3339))
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	minute := time.Unix(t.Minute*60, 0).UTC()
	line := DecisionJSON{Minute: minute, Threshold: th, Warm: make([]bool, minutes)}
	for _, id := range t.IDs[from:min(len(t.IDs), from+limit)] {
		if c.Request().Context().Err() != nil {
			return nil
		}
		e := t.Entries[id]
		line.ID, line.PInvoke, line.Forecast, line.MissingMinutes = id, e.PInvoke[:minutes], e.Forecast[:minutes], e.Missing
		switch demand {
		case "":
		case "mean":
			line.Demand = line.Forecast
		default:
			// a function answered without counts keeps no level: none
			c, _ := forecast.QuantileAt(e.Quantiles, level)
			line.Demand = c[:min(minutes, len(c))]
		}
		for h := range minutes {
			line.Warm[h] = float64(e.PInvoke[h]) >= th
		}
		if err := enc.Encode(&line); err != nil {
			return nil // the client left
		}
	}
	return bw.Flush()
}

// keptLevels is the quantile levels t's entries hold.
func keptLevels(t *decide.Table) []float64 {
	for _, id := range t.IDs {
		var out []float64
		for _, q := range t.Entries[id].Quantiles {
			out = append(out, q.Q)
		}
		if out != nil {
			return out
		}
	}
	return nil
}

// DecisionTable is the table GET /v1/decisions streams (decide.Loop).
type DecisionTable interface {
	Current() *decide.Table
}

func intParam(v string, def, lo, hi int) (int, error) {
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%q: want %d..%d", v, lo, hi)
	}
	return n, nil
}
