package onnx

import (
	"maps"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// RunStats counts, by model, the runs ONNX Runtime made, the rows they
// held and the seconds they took: where a forecast's time goes, on
// /metrics (a prometheus.Collector) and in bench-fleet's report. Every
// model loaded with Options.Stats adds to it.
type RunStats struct {
	mu      sync.Mutex
	byModel map[string]RunStat
}

// RunStat is one model's totals.
type RunStat struct {
	Runs, Rows int64
	Seconds    float64
}

// NewRunStats is an empty count.
func NewRunStats() *RunStats { return &RunStats{byModel: map[string]RunStat{}} }

func (s *RunStats) add(model string, rows int, took time.Duration) {
	s.mu.Lock()
	st := s.byModel[model]
	st.Runs++
	st.Rows += int64(rows)
	st.Seconds += took.Seconds()
	s.byModel[model] = st
	s.mu.Unlock()
}

// Snapshot is every model's totals so far.
func (s *RunStats) Snapshot() map[string]RunStat {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.byModel)
}

// Since is each model's totals after before (a Snapshot): what the runs
// between the two cost.
func (s *RunStats) Since(before map[string]RunStat) map[string]RunStat {
	out := s.Snapshot()
	for id, st := range out {
		b := before[id]
		out[id] = RunStat{Runs: st.Runs - b.Runs, Rows: st.Rows - b.Rows, Seconds: st.Seconds - b.Seconds}
	}
	return out
}

var (
	runsDesc = prometheus.NewDesc("mesp_model_runs_total",
		"ONNX Runtime runs by model (a batch is one run, or several under ort.max_rows_per_run).", []string{"model"}, nil)
	rowsDesc = prometheus.NewDesc("mesp_model_rows_total",
		"Rows (functions) ONNX Runtime ran by model.", []string{"model"}, nil)
	secondsDesc = prometheus.NewDesc("mesp_model_run_seconds_total",
		"Wall seconds in ONNX Runtime by model (one thread a run at ort.intra_op_threads 1: its CPU).", []string{"model"}, nil)
)

// Describe implements prometheus.Collector.
func (s *RunStats) Describe(ch chan<- *prometheus.Desc) {
	ch <- runsDesc
	ch <- rowsDesc
	ch <- secondsDesc
}

// Collect implements prometheus.Collector.
func (s *RunStats) Collect(ch chan<- prometheus.Metric) {
	for id, st := range s.Snapshot() {
		ch <- prometheus.MustNewConstMetric(runsDesc, prometheus.CounterValue, float64(st.Runs), id)
		ch <- prometheus.MustNewConstMetric(rowsDesc, prometheus.CounterValue, float64(st.Rows), id)
		ch <- prometheus.MustNewConstMetric(secondsDesc, prometheus.CounterValue, st.Seconds, id)
	}
}
