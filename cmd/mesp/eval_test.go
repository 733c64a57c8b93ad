package main

import (
	"context"
	"encoding/json"
	"errors"
	"github.com/mesp-project/mesp/manifest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/mesp-project/mesp/backtest"
	"github.com/mesp-project/mesp/internal/fixture"
	"github.com/mesp-project/mesp/provision"
	"github.com/mesp-project/mesp/report"
	"github.com/mesp-project/mesp/scaler"
)

// TestEvalOnFixture runs `mesp eval` on the 100-row fixture with the
// shipped models and checks the JSON contract.
func TestEvalOnFixture(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "eval.json")
	err := runEval(context.Background(), []string{"--data", fixture.Sample100, "--models", fixture.Models(), "--out", out, "--plots", dir})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Rows        int                                   `json:"rows"`
		Forecasters map[string]map[string]json.RawMessage `json:"forecasters"`
		PerCluster  []map[string]json.RawMessage          `json:"per_cluster"`
		Provision   map[string]json.RawMessage            `json:"provisioning"`
		Scaling     struct {
			Target    float64 `json:"target"`
			Functions int     `json:"functions"`
			All       int     `json:"all_functions"`
			Reactive  []struct {
				Window         *int    `json:"window"`
				Deficit        float64 `json:"deficit"`
				ReplicaMinutes int     `json:"replica_minutes"`
			} `json:"reactive"`
			Mesp []struct {
				Quantile       *float64 `json:"quantile"`
				Output         string   `json:"output"`
				Lead           int      `json:"lead"`
				Window         *int     `json:"window"`
				Deficit        float64  `json:"deficit"`
				ReplicaMinutes int      `json:"replica_minutes"`
			} `json:"mesp"`
			MespFloored []struct {
				Floor          string  `json:"floor"`
				Lead           int     `json:"lead"`
				ReplicaMinutes int     `json:"replica_minutes"`
				Deficit        float64 `json:"deficit"`
			} `json:"mesp_floored"`
			Coverage    map[string]float64 `json:"coverage"`
			AtReactive5 *struct {
				ReplicaMinutes   int     `json:"replica_minutes"`
				MespOverReactive float64 `json:"mesp_over_reactive"`
				FlooredDeficit   float64 `json:"mesp_floored_deficit"`
			} `json:"at_reactive_window5"`
		} `json:"scaling"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Rows != 100 {
		t.Errorf("rows %d, want 100", doc.Rows)
	}
	var pairs []string
	for _, name := range []string{"mesp", "dense", "naive", "mean60"} {
		m, ok := doc.Forecasters[name]
		if !ok {
			t.Fatalf("forecaster %s missing", name)
		}
		for _, k := range []string{"mae", "rmse", "wape", "mase_mean", "mase_median"} {
			if _, ok := m[k]; !ok {
				t.Errorf("%s: key %s missing", name, k)
			}
		}
		pairs = append(pairs, string(m["pairs"]))
	}
	for _, p := range pairs {
		if p != "600" {
			t.Errorf("pairs per forecaster %v, want all 600 (100 functions x 6 origins)", pairs)
		}
	}
	total := 0
	for _, c := range doc.PerCluster {
		for _, k := range []string{"cluster", "functions", "mesp", "dense"} {
			if _, ok := c[k]; !ok {
				t.Errorf("per_cluster entry without %s", k)
			}
		}
		var p int
		json.Unmarshal(c["pairs"], &p)
		total += p
	}
	if total != 600 {
		t.Errorf("per-cluster pairs sum to %d, want 600", total)
	}
	// EVALUATION.md §2's names: curves are lists of entries with a
	// threshold (keep-alive: a window), each with the five figures.
	figures := []string{"cold_starts", "invoked_minutes", "idle_minutes", "cold_start_rate", "p75_function_cold_start_rate"}
	check := func(name string, o map[string]json.RawMessage) {
		for _, k := range figures {
			if _, ok := o[k]; !ok {
				t.Errorf("%s: no %s", name, k)
			}
		}
	}
	for _, c := range []struct{ name, key string }{{"keepalive", "window"}, {"mesp_minutely", "threshold"},
		{"dense_minutely", "threshold"}, {"mesp_hourly", "threshold"}} {
		var curve []map[string]json.RawMessage
		if err := json.Unmarshal(doc.Provision[c.name], &curve); err != nil || len(curve) < 5 {
			t.Fatalf("%s: %d entries (%v)", c.name, len(curve), err)
		}
		for _, o := range curve {
			if _, ok := o[c.key]; !ok {
				t.Errorf("%s entry without %s", c.name, c.key)
			}
			check(c.name, o)
		}
	}
	// mesp_hourly thresholds the level, not the whole invocations: its
	// thresholds below 0.5 are points of their own.
	var hourly []struct {
		Threshold float64 `json:"threshold"`
		Idle      int     `json:"idle_minutes"`
	}
	if err := json.Unmarshal(doc.Provision["mesp_hourly"], &hourly); err != nil || len(hourly) < 2 {
		t.Fatalf("mesp_hourly: %v", err)
	}
	if lo, hi := hourly[0], hourly[len(hourly)-1]; lo.Threshold >= 0.5 || lo.Idle <= hi.Idle {
		t.Errorf("mesp_hourly: %+v to %+v: a lower threshold keeps no more instances warm", lo, hi)
	}
	idle := map[int]bool{}
	for _, p := range hourly {
		if p.Threshold <= 0.5 {
			idle[p.Idle] = true
		}
	}
	if len(idle) < 2 {
		t.Errorf("mesp_hourly: every threshold up to 0.5 gives the same point (%v): rounded forecasts?", hourly)
	}
	for _, name := range []string{"hybrid_histogram", "mesp_minutely_default"} {
		var o map[string]json.RawMessage
		if err := json.Unmarshal(doc.Provision[name], &o); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		check(name, o)
	}
	// EVALUATION.md section 4: reactive scaling over its windows, MESP's
	// median (the 0.5 quantile), expected count and each served quantile
	// level over the leads, each level's coverage
	sc := doc.Scaling
	m, err := manifest.ReadManifest(filepath.Join("..", "..", "models"))
	if err != nil {
		t.Fatal(err)
	}
	levels := len(m.Quantiles)
	if sc.Target != 60 || sc.All != 100 || sc.Functions == 0 || sc.Functions >= 100 || len(sc.Reactive) != 5 || len(sc.Mesp) != 1+(1+levels)*len(provision.Leads)+(2+levels)*len(provision.HeldWindows) || levels == 0 {
		t.Fatalf("scaling (%d quantile levels): %+v", levels, sc)
	}
	for i, r := range sc.Reactive {
		if r.Window == nil || i > 0 && (r.ReplicaMinutes < sc.Reactive[i-1].ReplicaMinutes || r.Deficit > sc.Reactive[i-1].Deficit) {
			t.Errorf("reactive window %v: a longer window holds more replicas and has no larger deficit: %+v", r.Window, sc.Reactive)
		}
	}
	if m := sc.Mesp[0]; m.Quantile == nil || *m.Quantile != 0.5 || m.Output != "median" || sc.Mesp[1].Output != "mean" {
		t.Errorf("mesp points: %+v", sc.Mesp)
	}
	for i := 2; i < len(sc.Mesp); i++ {
		// within a series (the mean, a level), a longer lead holds more
		if sc.Mesp[i].Window == nil && sc.Mesp[i].Lead > sc.Mesp[i-1].Lead && sc.Mesp[i].ReplicaMinutes < sc.Mesp[i-1].ReplicaMinutes {
			t.Errorf("a longer lead holds fewer replicas: %+v", sc.Mesp)
		}
	}
	// a higher level covers more and costs more, a minute ahead
	prev := sc.Coverage["0.5"]
	for _, q := range m.Quantiles {
		c, ok := sc.Coverage[strconv.FormatFloat(q.Q, 'g', -1, 64)]
		if !ok || c < prev {
			t.Errorf("level %v covers %v, under the level below it (%v)", q.Q, c, prev)
		}
		prev = c
	}
	if at := sc.AtReactive5; at == nil || at.ReplicaMinutes != sc.Reactive[3].ReplicaMinutes || !(at.MespOverReactive > 0) {
		t.Errorf("no reading of MESP's curve at reactive's 5-minute cost: %+v", at)
	}
	// the floored curve is the KEDA trigger's floor, by its metadata value
	if len(sc.MespFloored) == 0 {
		t.Error("no floored curve")
	}
	for _, p := range sc.MespFloored {
		if p.Floor != scaler.FloorLastMinute || p.Lead != 1 {
			t.Errorf("floored point %+v: want floor %q a minute ahead", p, scaler.FloorLastMinute)
		}
	}
	if c := sc.Coverage["0.5"]; !(c > 0.3 && c < 1) {
		t.Errorf("the median's coverage %v", c)
	}
	for _, f := range []string{"example-1.png", "clusters.png", "provisioning.png", "scaling.png"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() < 1000 {
			t.Errorf("plot %s missing or empty", f)
		}
	}
}

// TestWholePeerRoundsThePeer: the peer scored as MESP is (whole
// invocations), its clusters and errors passed through.
func TestWholePeerRoundsThePeer(t *testing.T) {
	for _, c := range []struct {
		name string
		fc   [][]float64
		err  error
		want [][]float64
	}{
		{"rounded", [][]float64{{0.2, 0.5, 1.49, 7.5}, {0, 3}}, nil, [][]float64{{0, 1, 1, 8}, {0, 3}}},
		{"error", nil, errors.New("table short"), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := backtest.Forecaster{Name: report.PeerCounts, Predict: func(context.Context, [][]float64) ([][]float64, []int, error) {
				return c.fc, []int{4, -1}, c.err
			}}
			w := wholePeer(p)
			got, cl, err := w.Predict(context.Background(), nil)
			if w.Name != report.PeerCountsWhole || !errors.Is(err, c.err) {
				t.Fatalf("name %q, error %v", w.Name, err)
			}
			if c.err != nil {
				return
			}
			if len(got) != len(c.want) || cl[0] != 4 || cl[1] != -1 {
				t.Fatalf("%v clusters %v", got, cl)
			}
			for i := range got {
				if !slices.Equal(got[i], c.want[i]) {
					t.Errorf("row %d: %v, want %v", i, got[i], c.want[i])
				}
			}
		})
	}
}
