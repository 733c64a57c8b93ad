// Package server is MESP's HTTP API (echo v4): forecasts, the experts in
// service, health, Prometheus metrics, OpenAPI, and hot reload of models.
package server

import (
	"bytes"
	"context"
	"crypto/subtle"
	"crypto/tls"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mesp-project/mesp/forecast"
	"github.com/mesp-project/mesp/history"
	"github.com/mesp-project/mesp/manifest"
	"github.com/mesp-project/mesp/router"
	"github.com/mesp-project/mesp/shard"
)

//go:embed openapi.json
var openAPI []byte

// Options configure a Server.
type Options struct {
	AdminToken string
	// WriteToken is the bearer token writes (POST /v1/observe) need; empty:
	// writes are taken from loopback clients only, or from clients that
	// presented a verified certificate (mutual TLS).
	WriteToken string
	// TLS, when set, serves HTTPS (tlsfiles.Files.ServerConfig).
	TLS          *tls.Config
	MaxBatch     int
	MaxBodyBytes int64
	// MaxInflightFunctions bounds the functions answered at once over all
	// requests (0: no bound); beyond it a request gets 503 + Retry-After.
	MaxInflightFunctions int
	// MaxInflightBodyBytes bounds the request body bytes held at once over
	// all requests (0: no bound); beyond it a request gets 503 +
	// Retry-After before its body is decoded.
	MaxInflightBodyBytes int64
	ReadTimeout          time.Duration
	WriteTimeout         time.Duration
	ShutdownTimeout      time.Duration
	Logger               *slog.Logger
	// History is the per-function store POST /v1/observe feeds (nil: the
	// route answers 404).
	History *history.Store
	// Now is the clock for /v1/observe (time.Now when nil).
	Now func() time.Time
	// Shard is this replica's share of the fleet: pushes and history reads
	// of a function another replica owns are answered 421, naming it.
	Shard shard.Shard
	// Decisions is the table computed once per minute that GET
	// /v1/decisions streams (nil: the route answers 404).
	Decisions DecisionTable
}

// Models is what the handlers need of the model set in service: answers,
// and a description of what is loaded. forecast.Forecaster is the real
// one; handler tests use one that needs no ONNX Runtime.
type Models interface {
	Predict(ctx context.Context, reqs []forecast.Request, mode forecast.Mode, outs forecast.Outputs) ([]forecast.Result, error)
	ForecastModel(ctx context.Context, reqs []forecast.Request, modelID string) ([]forecast.Result, error)
	// Catalog describes the set in service (ok false before the first
	// load); ReloadCatalog loads the folder anew, keeping the set in
	// service on any failure.
	Catalog() (c forecast.Catalog, ok bool)
	ReloadCatalog() (forecast.Catalog, error)
}

// Server serves one model set.
type Server struct {
	opts    Options
	models  Models
	echo    *echo.Echo
	metrics *metrics
	log     *slog.Logger

	inflight  atomic.Int64 // functions being answered
	bodyBytes atomic.Int64 // request body bytes held (readBody)

	mu         sync.Mutex
	lastReload ReloadStatus
	examples   examples // the console's, for the set in service
}

// ReloadStatus is what the last reload attempt did.
type ReloadStatus struct {
	At      time.Time `json:"at"`
	Trigger string    `json:"trigger"`
	OK      bool      `json:"ok"`
	Error   string    `json:"error,omitempty"`
}

// APIError is every error body: {"error": {"status": 400, "message": "..."}}.
type APIError struct {
	Error struct {
		Status  int    `json:"status"`
		Message string `json:"message"`
	} `json:"error"`
}

// New wires the routes. Call Reload (or let Run do it) to load models.
func New(models Models, o Options) *Server {
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Server{opts: o, models: models, echo: echo.New(), metrics: newMetrics(), log: o.Logger}
	e := s.echo
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.errorHandler
	e.Use(s.metrics.middleware)
	// A panic in a handler answers 500 (JSON, logged) instead of killing the process.
	e.Use(middleware.Recover())
	e.Use(s.bodyLimit)
	e.POST("/v1/forecast", s.handleForecast)
	e.POST("/v1/prewarm", s.handlePrewarm)
	e.GET("/v1/experts", s.handleExperts)
	e.POST("/v1/observe", s.handleObserve, s.requireWriter)
	e.GET("/v1/history/:id", s.handleHistory)
	e.GET("/v1/decisions", s.handleDecisions)
	e.GET("/favicon.ico", func(c echo.Context) error { return c.NoContent(http.StatusNoContent) })
	e.GET("/healthz", func(c echo.Context) error { return c.JSON(http.StatusOK, map[string]string{"status": "ok"}) })
	e.GET("/readyz", s.handleReady)
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{})))
	e.GET("/openapi.json", func(c echo.Context) error { return c.Blob(http.StatusOK, "application/json", openAPI) })
	e.POST("/v1/admin/reload", s.handleReload, s.requireAdmin)
	s.registerV2()
	s.registerConsole()
	return s
}

// RouteHook counts every routing decision in the server's metrics, then
// calls next (if any): set it as the forecaster's OnRoute.
func (s *Server) RouteHook(next forecast.RouteHook) forecast.RouteHook {
	return func(ctx context.Context, id string, counts []float64, rt router.Route, kind string) {
		label := kind
		if rt.OOD {
			label = "ood_dense"
		}
		s.metrics.routes.WithLabelValues(strconv.Itoa(rt.Cluster), label).Inc()
		if next != nil {
			next(ctx, id, counts, rt, kind)
		}
	}
}

func (s *Server) errorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status, msg := s.statusOf(err, c)
	var body APIError
	body.Error.Status, body.Error.Message = status, msg
	if err := c.JSON(status, body); err != nil {
		c.Set(writeFailed, true) // the metrics count it as dropped
		s.log.Error("writing error response", "err", err)
	}
}

// statusOf is the one mapping of errors to HTTP statuses and messages, for
// v1 and V2 alike; an overloaded server also asks the client to retry, and
// a server-side failure is logged.
func (s *Server) statusOf(err error, c echo.Context) (int, string) {
	status, msg := http.StatusInternalServerError, err.Error()
	var he *echo.HTTPError
	switch {
	case errors.As(err, &he):
		status, msg = he.Code, fmt.Sprint(he.Message)
		if he.Internal != nil {
			msg += ": " + he.Internal.Error()
		}
	case errors.Is(err, forecast.ErrInvalid), errors.Is(err, history.ErrInvalid):
		status = http.StatusBadRequest
	case errors.Is(err, history.ErrFull):
		status = http.StatusInsufficientStorage
	case errors.As(err, new(*shard.NotOwned)):
		// the function's history lives on another replica: the caller's
		// hash or routing is wrong; the message names the right one
		status = http.StatusMisdirectedRequest
	case errors.Is(err, ErrOverloaded):
		status = http.StatusServiceUnavailable
		c.Response().Header().Set("Retry-After", "1")
	case errors.Is(err, forecast.ErrNoPInvoke):
		status = http.StatusNotImplemented
	case errors.Is(err, forecast.ErrNotReady):
		status = http.StatusServiceUnavailable
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		status = http.StatusServiceUnavailable
	}
	switch {
	case status == http.StatusServiceUnavailable:
		// Overload and not-ready answers are counted in the metrics; an
		// ERROR line for each would make a burst a log flood.
		s.log.Debug("request refused", "path", c.Request().URL.Path, "status", status, "err", err)
	case status >= 500:
		s.log.Error("request failed", "path", c.Request().URL.Path, "status", status, "err", err)
	}
	return status, msg
}

// writeFailed marks, in a request's context, an answer that could not be
// written (the client never got it).
const writeFailed = "mesp.write_failed"

// bodyLimit refuses bodies over MaxBodyBytes with a JSON 413.
func (s *Server) bodyLimit(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if s.opts.MaxBodyBytes > 0 {
			if r.ContentLength > s.opts.MaxBodyBytes {
				return echo.NewHTTPError(http.StatusRequestEntityTooLarge, fmt.Sprintf("body of %d bytes, at most %d", r.ContentLength, s.opts.MaxBodyBytes))
			}
			r.Body = http.MaxBytesReader(c.Response(), r.Body, s.opts.MaxBodyBytes)
		}
		return next(c)
	}
}

func (s *Server) requireAdmin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.opts.AdminToken == "" {
			return echo.NewHTTPError(http.StatusForbidden, "admin routes are disabled: set server.admin_token")
		}
		got, ok := strings.CutPrefix(c.Request().Header.Get("Authorization"), "Bearer ")
		if !ok || !constantTimeEqual(got, s.opts.AdminToken) {
			return echo.NewHTTPError(http.StatusUnauthorized, "missing or wrong bearer token")
		}
		return next(c)
	}
}

// requireWriter guards the routes that change what MESP decides from (the
// history): without it any pod could push zeros to scale a function to
// zero or huge counts to scale it out. A write needs server.write_token
// when one is set; without one, a loopback client or (with mutual TLS) a
// client with a verified certificate.
func (s *Server) requireWriter(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if s.opts.WriteToken != "" {
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || !constantTimeEqual(got, s.opts.WriteToken) {
				s.metrics.rejected.WithLabelValues("unauthorized").Inc()
				return echo.NewHTTPError(http.StatusUnauthorized, "writes need the bearer token server.write_token")
			}
			return next(c)
		}
		if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
			return next(c)
		}
		if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
			if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
				return next(c)
			}
		}
		s.metrics.rejected.WithLabelValues("unauthorized").Inc()
		return echo.NewHTTPError(http.StatusForbidden, "writes from other hosts need server.write_token (a bearer token) or mutual TLS (server.tls.client_ca_file)")
	}
}

func constantTimeEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// RouteJSON is the router's decision for one function, in every answer.
type RouteJSON struct {
	ID       string  `json:"id"`
	Cluster  int     `json:"cluster"`
	Distance float64 `json:"distance"`
	OOD      bool    `json:"out_of_distribution"`
	// Blend is the runner-up cluster's count model that soft routing
	// blended into the forecast (absent: the forecast is one model's).
	Blend *BlendJSON `json:"blend,omitempty"`
	// Trees is the count trees' part of the forecast (absent: none).
	Trees *TreesJSON `json:"trees,omitempty"`
	// Timer is the period the timers' expert answered the counts in phase
	// with (absent: the count models answered).
	Timer *TimerJSON `json:"timer,omitempty"`
	// Sparse says the expected count is p_invoke times the size of an
	// invocation, or a steady rate (absent: the count models answered it).
	Sparse *SparseJSON `json:"sparse,omitempty"`
	// Mean is the mean trees' part of the expected count: forecast is
	// (1 - weight) times the median's level plus weight times theirs
	// (absent: forecast is the level, or the median).
	Mean *TreesJSON `json:"mean,omitempty"`
	// Upper says the expected count was raised by share times how far the
	// served quantile lies above the level (absent: it was not).
	Upper *UpperJSON `json:"upper,omitempty"`
}

// UpperJSON is how the expected count was derived from a served quantile
// (forecast.UpperShare): forecast = level + share x max(q - level, 0).
type UpperJSON struct {
	Quantile float64 `json:"quantile"`
	Share    float64 `json:"share"`
}

// SparseJSON is a sparse function's size of an invocation and, where
// its expected count is a steady rate, that rate (forecast.SparseMean).
type SparseJSON struct {
	SizeWhenInvoked float64     `json:"size_when_invoked"`
	Steady          *SteadyJSON `json:"steady,omitempty"`
}

// SteadyJSON is the steady rate a sparse function's forecast is: its
// invocations a minute over its last Minutes minutes (steady.Rate).
type SteadyJSON struct {
	Rate    float64 `json:"rate"`
	Minutes int     `json:"minutes"`
}

// TimerJSON is the timers' expert's period (periodic.Timer), and the
// multiple of it its sizes repeat at, where that is longer.
type TimerJSON struct {
	Period    int     `json:"period"`
	Cycle     int     `json:"cycle,omitempty"`
	Tolerance int     `json:"tolerance"`
	Kappa     float64 `json:"kappa"`
}

// TreesJSON is the count trees blended into every routed forecast: the
// forecast is (1 - weight) times the routed forecast plus weight times
// the trees'.
type TreesJSON struct {
	Model  string  `json:"model"`
	Weight float64 `json:"weight"`
}

// BlendJSON is the second model of a soft-routed forecast: the forecast
// is (1 - weight) times the nearest cluster's model plus weight times
// this one.
type BlendJSON struct {
	Cluster  int     `json:"cluster"`
	Distance float64 `json:"distance"`
	Model    string  `json:"model"`
	Kind     string  `json:"kind"`
	Weight   float64 `json:"weight"`
}

func routeJSON(r forecast.Result) RouteJSON {
	rj := RouteJSON{ID: r.ID, Cluster: r.Cluster, Distance: r.Distance, OOD: r.OOD}
	if b := r.Blend; b != nil {
		rj.Blend = &BlendJSON{Cluster: b.Cluster, Distance: b.Distance, Model: b.Model, Kind: b.Kind, Weight: b.Weight}
	}
	if t := r.Trees; t != nil {
		rj.Trees = &TreesJSON{Model: t.Model, Weight: t.Weight}
	}
	if t := r.Timer; t != nil {
		rj.Timer = &TimerJSON{Period: t.Period, Cycle: t.Cycle, Tolerance: t.Tolerance, Kappa: t.Kappa}
	}
	if m := r.Mean; m != nil {
		rj.Mean = &TreesJSON{Model: m.Model, Weight: m.Weight}
	}
	if u := r.Upper; u != nil {
		rj.Upper = &UpperJSON{Quantile: u.Quantile, Share: u.Share}
	}
	if sp := r.Sparse; sp != nil {
		rj.Sparse = &SparseJSON{SizeWhenInvoked: sp.SizeWhenInvoked}
		if st := sp.Steady; st != nil {
			rj.Sparse.Steady = &SteadyJSON{Rate: st.PerMinute, Minutes: st.Minutes}
		}
	}
	return rj
}

// ForecastJSON is one function's answer.
type ForecastJSON struct {
	RouteJSON
	Model  string `json:"model"`
	Kind   string `json:"kind"`
	Family string `json:"family"`
	// Forecast is the expected count of each minute (the median where the
	// set has no mean trees); Median each minute's median, in whole
	// invocations. Both unless "outputs" names others.
	Forecast []float32 `json:"forecast,omitempty"`
	Median   []float32 `json:"median,omitempty"`
	// Quantiles is each quantile "outputs" names ("q0.9"), by name.
	Quantiles map[string][]float32 `json:"quantiles,omitempty"`
}

// ForecastResponse is the body of a successful POST /v1/forecast.
type ForecastResponse struct {
	Horizon   int            `json:"horizon"`
	Forecasts []ForecastJSON `json:"forecasts"`
}

// requestMemory is one forecast request's working memory, pooled: a
// 64-function batch is about 0.2 MB of JSON and 0.6 MB of decoded counts,
// and allocating both afresh for every request kept the garbage collector
// busy (and, with one of two cores marking, added to the tail latency).
type requestMemory struct {
	body   bytes.Buffer
	counts []float64
}

// announcedBodyReserve is the most of an announced Content-Length reserved
// before the bytes arrive: small, since every open connection may hold it
// (200 slow clients took 200 MB at 1 MiB each); a pooled buffer keeps the
// capacity that earlier bodies gave it.
const announcedBodyReserve = 64 << 10

var requestMemoryPool = sync.Pool{New: func() any { return new(requestMemory) }}

// maxPooledBytes is the largest working memory put back in the pool: a
// buffer grown by one 30 MB body must not stay with the process for every
// request after it.
const maxPooledBytes = 4 << 20

// getRequestMemory and putRequestMemory are the pool's one way in and out.
func getRequestMemory() *requestMemory { return requestMemoryPool.Get().(*requestMemory) }

func putRequestMemory(m *requestMemory) {
	if m.body.Cap() > maxPooledBytes || 8*cap(m.counts) > maxPooledBytes {
		return
	}
	requestMemoryPool.Put(m)
}

// ErrOverloaded answers 503 with Retry-After: more functions are in flight
// than server.max_inflight_functions allows.
var ErrOverloaded = errors.New("server busy: too many functions in flight, retry shortly")

// Admit reserves n functions of the in-flight budget for work outside
// HTTP (the gRPC scaler); call release when answered. ErrOverloaded when
// the budget is spent.
func (s *Server) Admit(n int) (release func(), err error) { return s.admit(n) }

// RequestCost is what one request costs the in-flight budget beside its
// functions, in functions: decoding, routing and a model run per model
// whatever the batch's size. Without it, a flood of single-function
// requests filled a 4,096-function budget with 4,096 requests, seconds of
// queue, before the first 503.
const RequestCost = 7

// admit reserves n functions of the in-flight budget, and the request's
// own cost; call release when answered.
func (s *Server) admit(n int) (release func(), err error) {
	limit := int64(s.opts.MaxInflightFunctions)
	w := int64(n + RequestCost)
	if now := s.inflight.Add(w); limit > 0 && now > limit && now != w {
		// A request alone is always admitted (its size is bounded by
		// max_batch); otherwise the budget decides.
		s.inflight.Add(-w)
		s.metrics.rejected.WithLabelValues("overload").Inc()
		return nil, ErrOverloaded
	}
	return func() { s.inflight.Add(-w) }, nil
}

// answer runs routed requests within the in-flight budget and the write
// timeout.
func (s *Server) answer(c echo.Context, reqs []forecast.Request, outs forecast.Outputs) ([]forecast.Result, error) {
	release, err := s.admit(len(reqs))
	if err != nil {
		return nil, err
	}
	defer release()
	ctx, cancel := s.answerContext(c)
	defer cancel()
	return s.models.Predict(ctx, reqs, forecast.Routed, outs)
}

// answerContext ties a request's work to the write timeout: work that
// could not be written back in time stops.
func (s *Server) answerContext(c echo.Context) (context.Context, context.CancelFunc) {
	r := c.Request()
	ctx := r.Context()
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		ctx = context.WithValue(ctx, sourceKey{}, host)
	}
	if s.opts.WriteTimeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, s.opts.WriteTimeout)
}

type sourceKey struct{}

// Source is the client address of the request a forecast context belongs
// to (the connection's peer, never a forwarded header), or "".
func Source(ctx context.Context) string {
	s, _ := ctx.Value(sourceKey{}).(string)
	return s
}

// requireJSON refuses a body that is not application/json: a cross-site
// form or text/plain POST (which a browser sends without asking) must not
// reach the models, the OOD log or the history. A body with no
// Content-Type at all is taken as JSON only from a client that is not a
// browser (no Origin, no Sec-Fetch-Mode): KServe clients such as
// tritonclient send none, while a page can post a typeless Blob
// cross-site, and browsers mark every such POST with Origin.
func requireJSON(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	if ct == "" && r.Header.Get("Origin") == "" && r.Header.Get("Sec-Fetch-Mode") == "" {
		return nil
	}
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
		return echo.NewHTTPError(http.StatusUnsupportedMediaType,
			fmt.Sprintf("Content-Type %q: send application/json", ct))
	}
	return nil
}

// readForecastBody reads and decodes a /v1/forecast or /v1/prewarm body
// into pooled memory; the caller calls release and returns mem to the
// pool once answered.
func (s *Server) readForecastBody(c echo.Context, mem *requestMemory) ([]forecast.Request, requestOptions, func(), error) {
	release, err := s.readBody(c, mem)
	if err != nil {
		return nil, requestOptions{}, release, err
	}
	reqs, opts, counts, err := decodeForecastRequest(mem.body.Bytes(), s.opts.MaxBatch, s.maxCounts(), mem.counts[:0])
	mem.counts = counts
	return reqs, opts, release, err
}

func (s *Server) handleForecast(c echo.Context) error {
	mem := getRequestMemory()
	// Nothing holds on to the counts once Forecast returns: the model
	// inputs are float32 copies, and route hooks run synchronously.
	defer putRequestMemory(mem)
	reqs, opts, release, err := s.readForecastBody(c, mem)
	defer release()
	if err != nil {
		return err
	}
	if opts.Policy != nil {
		return fmt.Errorf("%w: \"policy\" belongs to POST /v1/prewarm", forecast.ErrInvalid)
	}
	want, err := s.outputs(opts.Outputs, []string{outForecast, outMedian})
	if err != nil {
		return err
	}
	res, err := s.answer(c, reqs, want.models(forecast.Counts))
	if err != nil {
		return err
	}
	out := ForecastResponse{Horizon: manifest.Horizon, Forecasts: make([]ForecastJSON, len(res))}
	for i, r := range res {
		f := ForecastJSON{RouteJSON: routeJSON(r), Model: r.Model, Kind: r.Kind, Family: r.Family, Quantiles: want.quantiles(r)}
		if want[outForecast] {
			f.Forecast = r.Forecast
		}
		if want[outMedian] {
			f.Median = r.Median
		}
		out.Forecasts[i] = f
	}
	return c.JSON(http.StatusOK, out)
}

// PrewarmJSON is one function's pre-warm answer: per minute of the next
// hour, the probability of an invocation, the expected count and whether
// to keep an instance warm (p_invoke >= threshold). A request's "outputs"
// may leave arrays out (and then their models).
type PrewarmJSON struct {
	RouteJSON
	// Model and Kind answered p_invoke; ForecastModel answered the counts.
	Model         string  `json:"model,omitempty"`
	Kind          string  `json:"kind,omitempty"`
	ForecastModel string  `json:"forecast_model,omitempty"`
	Threshold     float64 `json:"threshold"`
	// Silence says the hazard of an unprecedented silence capped PInvoke.
	Silence *SilenceJSON `json:"silence,omitempty"`
	// Stop says the stop model answered the next minute's p_invoke.
	Stop     *StopJSON `json:"stop,omitempty"`
	PInvoke  []float32 `json:"p_invoke,omitempty"`
	Forecast []float32 `json:"forecast,omitempty"`
	Median   []float32 `json:"median,omitempty"`
	Warm     []bool    `json:"warm,omitempty"`
	// Quantiles is each quantile "outputs" names ("q0.9"), by name.
	Quantiles map[string][]float32 `json:"quantiles,omitempty"`
}

// SilenceJSON is the idle gap whose hazard capped p_invoke
// (forecast.Result.Silence).
type SilenceJSON struct {
	IdleMinutes int `json:"idle_minutes"`
}

// StopJSON is the next minute's p_invoke before the stop model answered it
// (forecast.Result.Stop); later minutes were scaled by as much where it
// lowered it.
type StopJSON struct {
	PInvokeBefore float32 `json:"p_invoke_before"`
}

// PrewarmResponse is the body of a successful POST /v1/prewarm.
type PrewarmResponse struct {
	Horizon   int           `json:"horizon"`
	Threshold float64       `json:"threshold"`
	Functions []PrewarmJSON `json:"functions"`
}

// The per-minute arrays of an answer, as a request's "outputs" names them
// (and the quantiles the set serves, "q0.9"; "q0.5" is the median; v1
// answers any level between two served ones too, "q0.92", interpolated
// as KEDA's trigger is); "forecast", "median", "p_invoke" and the served
// quantiles' are the KServe V2 outputs' names too.
const (
	outPInvoke  = "p_invoke"
	outWarm     = "warm"
	outForecast = "forecast"
	outMedian   = "median"
)

// wantOutputs is the arrays a request asks for, by name.
type wantOutputs map[string]bool

// outputs is what a request's "outputs" asks for among defaults and the
// quantiles the set in service answers; nil names: the defaults.
func (s *Server) outputs(names []string, defaults []string) (wantOutputs, error) {
	want := wantOutputs{}
	if names == nil {
		for _, n := range defaults {
			want[n] = true
		}
		return want, nil
	}
	known := slices.Clone(defaults)
	c, loaded := s.models.Catalog()
	if loaded {
		known = append(known, c.QuantileNames()...)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%w: \"outputs\" is empty: name at least one of %q", forecast.ErrInvalid, known)
	}
	for _, n := range names {
		if q, ok := quantileLevel(n); !slices.Contains(known, n) && !(ok && loaded && c.Answers(q)) {
			return nil, fmt.Errorf("%w: unknown output %q (known: %q, or a level between two of those quantiles, \"q0.92\")", forecast.ErrInvalid, n, known)
		}
		want[n] = true
	}
	return want, nil
}

// quantileLevel is the level a quantile's output name asks ("q0.92":
// 0.92); ok is false for a name that is not one.
func quantileLevel(name string) (float64, bool) {
	rest, ok := strings.CutPrefix(name, "q")
	if !ok {
		return 0, false
	}
	q, err := strconv.ParseFloat(rest, 64)
	return q, err == nil && q >= forecast.Median && q < 1
}

// models is what the models must compute for these outputs, beside base.
func (w wantOutputs) models(base forecast.Outputs) forecast.Outputs {
	outs := base
	for n := range w {
		switch {
		case n == manifest.QuantileName(forecast.Median):
			outs |= forecast.Counts
		case strings.HasPrefix(n, "q"):
			outs |= forecast.Quantiles
		}
	}
	return outs
}

// quantiles is r's quantiles that w names, by name ("q0.5": the median).
func (w wantOutputs) quantiles(r forecast.Result) map[string][]float32 {
	var out map[string][]float32
	add := func(name string, counts []float32) {
		if w[name] {
			if out == nil {
				out = map[string][]float32{}
			}
			out[name] = counts
		}
	}
	// each by the name it was asked by: a served level's own counts, one
	// between two served ones interpolated
	series := r.QuantileSeries()
	for name := range w {
		if q, ok := quantileLevel(name); ok {
			if c, ok := forecast.QuantileAt(series, q); ok {
				add(name, c)
			}
		}
	}
	return out
}

func (s *Server) handlePrewarm(c echo.Context) error {
	mem := getRequestMemory()
	defer putRequestMemory(mem)
	reqs, opts, release, err := s.readForecastBody(c, mem)
	defer release()
	if err != nil {
		return err
	}
	want, err := s.outputs(opts.Outputs, []string{outPInvoke, outWarm, outForecast, outMedian})
	if err != nil {
		return err
	}
	th, err := s.threshold(opts.Policy)
	if err != nil {
		return err
	}
	var outs forecast.Outputs
	if want[outForecast] || want[outMedian] {
		outs |= forecast.Counts
	}
	if want[outPInvoke] || want[outWarm] {
		outs |= forecast.PInvoke
	}
	outs = want.models(outs)
	res, err := s.answer(c, reqs, outs)
	if err != nil {
		return err
	}
	out := PrewarmResponse{Horizon: manifest.Horizon, Threshold: th, Functions: make([]PrewarmJSON, len(res))}
	for i, r := range res {
		f := PrewarmJSON{RouteJSON: routeJSON(r), Threshold: th}
		if outs&forecast.PInvoke != 0 {
			f.Model, f.Kind = r.PModel, r.PKind
		}
		if r.Silence > 0 {
			f.Silence = &SilenceJSON{IdleMinutes: r.Silence}
		}
		if r.Stop != nil {
			f.Stop = &StopJSON{PInvokeBefore: r.Stop.PInvokeBefore}
		}
		if want[outPInvoke] {
			f.PInvoke = r.PInvoke
		}
		if want[outWarm] {
			f.Warm = make([]bool, len(r.PInvoke))
			for h, p := range r.PInvoke {
				f.Warm[h] = float64(p) >= th
			}
		}
		if outs&forecast.Counts != 0 {
			f.ForecastModel = r.Model
		}
		f.Quantiles = want.quantiles(r)
		if want[outForecast] {
			f.Forecast = r.Forecast
		}
		if want[outMedian] {
			f.Median = r.Median
		}
		out.Functions[i] = f
	}
	return c.JSON(http.StatusOK, out)
}

// maxCounts is the longest pattern the models in service take (a day when
// none are loaded yet): longer counts stop the scan at once.
func (s *Server) maxCounts() int {
	if c, ok := s.models.Catalog(); ok {
		return c.Clusters.Length
	}
	return 1440
}

// threshold is the request's pre-warm threshold, else the manifest's.
func (s *Server) threshold(p *PolicyJSON) (float64, error) {
	if p != nil && p.Threshold != nil {
		th := *p.Threshold
		if !(th >= 0 && th <= 1) {
			return 0, fmt.Errorf("%w: policy.threshold %v, want a probability in [0, 1]", forecast.ErrInvalid, th)
		}
		return th, nil
	}
	c, ok := s.models.Catalog()
	if !ok {
		return 0, forecast.ErrNotReady
	}
	if th := c.PrewarmThreshold(); th > 0 {
		return th, nil
	}
	return 0, fmt.Errorf("%w: the models in service have no default pre-warm threshold: give \"policy\": {\"threshold\": p}", forecast.ErrInvalid)
}

// ExpertJSON describes one loaded model.
type ExpertJSON struct {
	ID          string  `json:"id"`
	Cluster     *int    `json:"cluster,omitempty"`
	File        string  `json:"file"`
	SHA256      string  `json:"sha256"`
	Family      string  `json:"family"`
	InputLen    int     `json:"input_len"`
	ValMAE      float64 `json:"val_mae"`
	DenseValMAE float64 `json:"dense_val_mae,omitempty"`
	Serve       string  `json:"serve,omitempty"`
	ClusterSize int     `json:"cluster_size,omitempty"`
	Threshold   float64 `json:"threshold,omitempty"`
}

func (s *Server) handleExperts(c echo.Context) error {
	set, ok := s.models.Catalog()
	if !ok {
		return forecast.ErrNotReady
	}
	m := set.Manifest
	out := struct {
		LoadedAt   time.Time    `json:"loaded_at"`
		Horizon    int          `json:"horizon"`
		Dense      ExpertJSON   `json:"dense"`
		Experts    []ExpertJSON `json:"experts"`
		Trees      *TreesEntry  `json:"trees,omitempty"`
		LastReload ReloadStatus `json:"last_reload"`
	}{LoadedAt: set.LoadedAt, Horizon: m.Horizon, LastReload: s.reloadStatus(),
		Dense: ExpertJSON{ID: m.Dense.ID, File: m.Dense.File, SHA256: m.Dense.SHA256, Family: m.Dense.Family, InputLen: m.Dense.InputLen, ValMAE: m.Dense.ValMAE}}
	sizes := map[int]manifestCluster{}
	for _, c := range set.Clusters.Clusters {
		sizes[c.ID] = manifestCluster{c.Size, c.Threshold}
	}
	for _, e := range m.Experts {
		cl := e.Cluster
		out.Experts = append(out.Experts, ExpertJSON{ID: e.ID, Cluster: &cl, File: e.File, SHA256: e.SHA256, Family: e.Family,
			InputLen: e.InputLen, ValMAE: e.ValMAE, DenseValMAE: e.DenseValMAE, Serve: e.Serve,
			ClusterSize: sizes[cl].size, Threshold: sizes[cl].threshold})
	}
	if t := m.Trees; t != nil {
		out.Trees = &TreesEntry{ID: t.ID, File: t.File, SHA256: t.SHA256, Family: t.Family, InputLen: t.InputLen, Weight: t.Weight}
		out.Trees.DenseFeatures = t.DenseFeatures
	}
	return c.JSON(http.StatusOK, out)
}

// TreesEntry is the count trees in /v1/experts: blended into every routed
// forecast at Weight.
type TreesEntry struct {
	ID       string  `json:"id"`
	File     string  `json:"file"`
	SHA256   string  `json:"sha256"`
	Family   string  `json:"family"`
	InputLen int     `json:"input_len"`
	Weight   float64 `json:"weight"`
	// DenseFeatures says the trees also read the dense p_invoke graph's
	// features of the function's day.
	DenseFeatures bool `json:"dense_features,omitempty"`
}

type manifestCluster struct {
	size      int
	threshold float64
}

func (s *Server) handleReady(c echo.Context) error {
	if _, ok := s.models.Catalog(); !ok {
		return echo.NewHTTPError(http.StatusServiceUnavailable, "models not loaded")
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}

func (s *Server) handleReload(c echo.Context) error {
	st := s.Reload("admin")
	if !st.OK {
		msg := "reload refused, previous models keep serving: "
		if _, ok := s.models.Catalog(); !ok {
			msg = "reload refused, no models are serving: "
		}
		return echo.NewHTTPError(http.StatusUnprocessableEntity, msg+st.Error)
	}
	return c.JSON(http.StatusOK, st)
}

func (s *Server) reloadStatus() ReloadStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastReload
}

// Reload loads the models folder anew; on any failure the models in
// service stay, and the failure is logged and reported.
func (s *Server) Reload(trigger string) ReloadStatus {
	st := ReloadStatus{At: time.Now(), Trigger: trigger}
	_, serving := s.models.Catalog()
	set, err := s.models.ReloadCatalog()
	if err != nil {
		st.Error = err.Error()
		s.metrics.loads.WithLabelValues("refused").Inc()
		if serving {
			s.log.Error("model reload refused; previous models keep serving", "trigger", trigger, "err", err)
		} else {
			s.log.Error("models refused; none are serving", "trigger", trigger, "err", err)
		}
	} else {
		st.OK = true
		s.metrics.loads.WithLabelValues("ok").Inc()
		s.log.Info("models loaded", "trigger", trigger, "experts", len(set.Manifest.Experts), "dense", set.Manifest.Dense.Family)
	}
	s.mu.Lock()
	s.lastReload = st
	s.mu.Unlock()
	return st
}

// Serve answers on ln until ctx ends, then drains in-flight requests.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: s.echo, ReadTimeout: s.opts.ReadTimeout, WriteTimeout: s.opts.WriteTimeout,
		ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 2 * time.Minute,
		// Failed TLS handshakes and the like, through the server's logger
		// (at debug: any port scan makes them).
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
	if s.opts.TLS != nil {
		ln = tls.NewListener(ln, s.opts.TLS)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	timeout := s.opts.ShutdownTimeout
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	s.log.Info("shutting down, draining requests", "timeout", timeout)
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("server: shutdown: %w", err)
	}
	return nil
}
