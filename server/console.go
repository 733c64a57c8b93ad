package server

import (
	"embed"
	"io/fs"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	dto "github.com/prometheus/client_model/go"

	"github.com/mesp-project/mesp/forecast"
	"github.com/mesp-project/mesp/trace"
)

// The web console: plain HTML/JS/CSS embedded in the binary, no network.
//
//go:embed console
var consoleFS embed.FS

func (s *Server) registerConsole() {
	sub, _ := fs.Sub(consoleFS, "console")
	static := http.StripPrefix("/console/", http.FileServer(http.FS(sub)))
	s.echo.GET("/console/*", echo.WrapHandler(static))
	s.echo.GET("/", func(c echo.Context) error { return c.Redirect(http.StatusFound, "/console/") })
	s.echo.GET("/console", func(c echo.Context) error { return c.Redirect(http.StatusMovedPermanently, "/console/") })
	s.echo.GET("/v1/clusters", s.handleClusters)
	s.echo.GET("/v1/examples", s.handleExamples)
	s.echo.GET("/v1/stats", s.handleStats)
}

// ClusterJSON is one cluster as the console draws it.
type ClusterJSON struct {
	ID        int       `json:"id"`
	Size      int       `json:"size"`
	Threshold float64   `json:"threshold"`
	Centroid  []float64 `json:"centroid"`
}

func (s *Server) handleClusters(c echo.Context) error {
	set, ok := s.models.Catalog()
	if !ok {
		return forecast.ErrNotReady
	}
	out := make([]ClusterJSON, 0, len(set.Clusters.Clusters))
	for _, cl := range set.Clusters.Clusters {
		out = append(out, ClusterJSON{ID: cl.ID, Size: cl.Size, Threshold: cl.Threshold, Centroid: cl.Centroid})
	}
	return c.JSON(http.StatusOK, map[string]any{"k": len(out), "length": set.Clusters.Length, "transform": set.Clusters.Transform, "clusters": out})
}

// example is one real function offered to the forecast explorer.
type example struct {
	Label  string    `json:"label"`
	ID     string    `json:"id"`
	Counts []float64 `json:"counts"`
}

// examples caches the explorer's examples for the model set in service:
// they change only when the set does.
type examples struct {
	mu       sync.Mutex
	loadedAt time.Time // the set's they are
	list     []example
}

// handleExamples offers one real training function per cluster (the middle
// row of the cluster's Parquet file, when shipped) for the forecast
// explorer.
func (s *Server) handleExamples(c echo.Context) error {
	set, ok := s.models.Catalog()
	if !ok {
		return forecast.ErrNotReady
	}
	s.examples.mu.Lock()
	defer s.examples.mu.Unlock()
	if !s.examples.loadedAt.Equal(set.LoadedAt) {
		var list []example
		for _, cl := range set.Clusters.Clusters {
			f, err := trace.ReadParquetMiddleRow(filepath.Join(set.Dir, cl.Parquet))
			if err != nil {
				continue // not shipped: the console offers the others
			}
			list = append(list, example{Label: "cluster " + strconv.Itoa(cl.ID) + " member", ID: f.ID, Counts: f.Counts})
		}
		s.examples.loadedAt, s.examples.list = set.LoadedAt, list
	}
	return c.JSON(http.StatusOK, map[string]any{"examples": s.examples.list})
}

// handleStats summarises the Prometheus counters as JSON for the console.
func (s *Server) handleStats(c echo.Context) error {
	families, err := s.metrics.reg.Gather()
	if err != nil {
		return err
	}
	requests := map[string]float64{}
	routes := map[string]float64{}
	loads := map[string]float64{}
	label := func(m *dto.Metric, name string) string {
		for _, l := range m.GetLabel() {
			if l.GetName() == name {
				return l.GetValue()
			}
		}
		return ""
	}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			switch f.GetName() {
			case "mesp_http_requests_total":
				requests[label(m, "route")+" "+label(m, "status")] += m.GetCounter().GetValue()
			case "mesp_routes_total":
				routes[label(m, "cluster")+" "+label(m, "kind")] += m.GetCounter().GetValue()
			case "mesp_model_loads_total":
				loads[label(m, "result")] += m.GetCounter().GetValue()
			}
		}
	}
	return c.JSON(http.StatusOK, map[string]any{"requests": requests, "routes": routes, "loads": loads, "last_reload": s.reloadStatus()})
}
