package server

import (
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the server's Prometheus series, in their own registry so
// that several servers (tests) can live in one process.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	routes   *prometheus.CounterVec
	loads    *prometheus.CounterVec
	rejected *prometheus.CounterVec
	dropped  prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mesp_http_requests_total", Help: "HTTP requests by route and status."}, []string{"route", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "mesp_http_request_duration_seconds", Help: "HTTP request latency by route and status.",
			Buckets: []float64{.0002, .0005, .001, .002, .005, .01, .025, .05, .1, .25, 1}}, []string{"route", "status"}),
		routes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mesp_routes_total", Help: "Routed functions by cluster and answering model kind."}, []string{"cluster", "kind"}),
		loads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mesp_model_loads_total", Help: "Model set loads and reloads by result."}, []string{"result"}),
	}
	m.rejected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mesp_requests_rejected_total", Help: "Requests refused before any work, by reason (overload: in-flight function budget)."}, []string{"reason"})
	m.dropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "mesp_responses_dropped_total", Help: "Answers computed but not delivered (the write failed, e.g. past the write timeout)."})
	m.reg.MustRegister(m.requests, m.latency, m.routes, m.loads, m.rejected, m.dropped,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registerer is where other parts of the process (the gRPC scaler) put
// their series, so that /metrics serves them too.
func (s *Server) Registerer() prometheus.Registerer { return s.metrics.reg }

func (m *metrics) middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		// An error after the response was committed is a failed write: the
		// status line says 200, but the client got nothing usable.
		dropped := err != nil && c.Response().Committed
		if err != nil && !dropped {
			c.Error(err) // write the response now so the status is known
			dropped = c.Get(writeFailed) != nil
		}
		// A small answer sits in the connection's buffer until the handler
		// returns; flushing here tells whether it reached the client.
		if !dropped && c.Response().Committed {
			if ferr := http.NewResponseController(c.Response().Writer).Flush(); ferr != nil {
				dropped = true
			}
		}
		route := c.Path()
		if route == "" {
			route = "unmatched"
		}
		status := strconv.Itoa(c.Response().Status)
		if dropped {
			status = "dropped"
			m.dropped.Inc()
		}
		m.requests.WithLabelValues(route, status).Inc()
		m.latency.WithLabelValues(route, status).Observe(time.Since(start).Seconds())
		return nil
	}
}
