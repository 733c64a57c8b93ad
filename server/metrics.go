package server

import (
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the server's Prometheus series, in their own registry so
// that several servers (tests) can live in one process.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	routes   *prometheus.CounterVec
	loads    *prometheus.CounterVec
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
	m.reg.MustRegister(m.requests, m.latency, m.routes, m.loads,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err) // write the response now so the status is known
		}
		route := c.Path()
		if route == "" {
			route = "unmatched"
		}
		status := strconv.Itoa(c.Response().Status)
		m.requests.WithLabelValues(route, status).Inc()
		m.latency.WithLabelValues(route, status).Observe(time.Since(start).Seconds())
		return nil
	}
}
