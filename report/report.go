// Package report turns a backtest and a provisioning simulation into the
// JSON document, the table and the plots of `mesp eval`.
package report

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/mesp-project/mesp/backtest"
	"github.com/mesp-project/mesp/plots"
	"github.com/mesp-project/mesp/provision"
	"github.com/mesp-project/mesp/trace"
)

// DefaultPrewarmThreshold is the forecast (invocations/minute) at which
// mesp_prewarm keeps an instance warm: an invocation is "likely" once the
// forecast rounds to one. Fixed a priori, never picked on evaluation data.
const DefaultPrewarmThreshold = 0.5

// Document is the JSON of `mesp eval`; the keys are a contract.
type Document struct {
	Rows         int                          `json:"rows"`
	Forecasters  map[string]backtest.Metrics  `json:"forecasters"`
	PerCluster   []backtest.ClusterMetrics    `json:"per_cluster"`
	Provisioning map[string]provision.Outcome `json:"provisioning"`
	// Ratios: mesp WAPE over dense and over the better of naive/mean60;
	// mesp_prewarm cold starts and idle minutes over keepalive10's.
	Ratios       map[string]float64 `json:"ratios"`
	PrewarmCurve []CurvePoint       `json:"mesp_prewarm_curve"`
	// PrewarmKACurve is forecast pre-warming backed by a 5-minute keep-alive.
	PrewarmKACurve []CurvePoint `json:"mesp_prewarm_ka5_curve"`
}

// CurvePoint is one threshold of the MESP pre-warming curve.
type CurvePoint struct {
	Threshold     float64 `json:"threshold"`
	ColdStartRate float64 `json:"cold_start_rate"`
	IdleMinutes   int     `json:"idle_minutes"`
}

// New assembles the document.
func New(res *backtest.Result, prov map[string]provision.Outcome, rows int) Document {
	d := Document{Rows: rows, Forecasters: res.Forecasters, PerCluster: res.PerCluster,
		Provisioning: map[string]provision.Outcome{}, Ratios: map[string]float64{}}
	for name, o := range prov {
		policy, th, ok := strings.Cut(name, "@")
		if !ok {
			d.Provisioning[name] = o
			continue
		}
		v, _ := strconv.ParseFloat(th, 64)
		pt := CurvePoint{Threshold: v, ColdStartRate: o.ColdStartRate, IdleMinutes: o.IdleMinutes}
		if policy == "mesp_prewarm" {
			d.PrewarmCurve = append(d.PrewarmCurve, pt)
		} else {
			d.PrewarmKACurve = append(d.PrewarmKACurve, pt)
		}
		if v == DefaultPrewarmThreshold {
			d.Provisioning[policy] = o
		}
	}
	for _, c := range [][]CurvePoint{d.PrewarmCurve, d.PrewarmKACurve} {
		sort.Slice(c, func(i, j int) bool { return c[i].Threshold < c[j].Threshold })
	}
	m, dn := res.Forecasters["mesp"], res.Forecasters["dense"]
	best := math.Min(res.Forecasters["naive"].WAPE, res.Forecasters["mean60"].WAPE)
	d.Ratios["mesp_wape_over_dense"] = m.WAPE / dn.WAPE
	d.Ratios["mesp_wape_over_best_baseline"] = m.WAPE / best
	d.Ratios["dense_wape_over_best_baseline"] = dn.WAPE / best
	ka, mp := d.Provisioning["keepalive10"], d.Provisioning["mesp_prewarm"]
	if ka.ColdStarts > 0 && ka.IdleMinutes > 0 {
		d.Ratios["mesp_prewarm_cold_starts_over_keepalive10"] = float64(mp.ColdStarts) / float64(ka.ColdStarts)
		d.Ratios["mesp_prewarm_idle_over_keepalive10"] = float64(mp.IdleMinutes) / float64(ka.IdleMinutes)
		mk := d.Provisioning["mesp_prewarm_ka5"]
		d.Ratios["mesp_prewarm_ka5_cold_starts_over_keepalive10"] = float64(mk.ColdStarts) / float64(ka.ColdStarts)
		d.Ratios["mesp_prewarm_ka5_idle_over_keepalive10"] = float64(mk.IdleMinutes) / float64(ka.IdleMinutes)
	}
	return d
}

// Table is a human-readable summary.
func Table(d Document) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-10s %10s %10s %8s %10s %11s\n", "forecaster", "MAE", "RMSE", "WAPE", "MASE mean", "MASE median")
	for _, name := range []string{"mesp", "dense", "naive", "mean60"} {
		m := d.Forecasters[name]
		fmt.Fprintf(&b, "%-10s %10.3f %10.3f %8.4f %10.3f %11.3f\n", name, m.MAE, m.RMSE, m.WAPE, m.MASEMean, m.MASEMedian)
	}
	fmt.Fprintf(&b, "\n%-8s %9s %12s %12s %12s\n", "cluster", "functions", "mesp WAPE", "dense WAPE", "naive WAPE")
	for _, c := range d.PerCluster {
		name := strconv.Itoa(c.Cluster)
		if c.Cluster < 0 {
			name = "OOD"
		}
		fmt.Fprintf(&b, "%-8s %9d %12.4f %12.4f %12.4f\n", name, c.Functions, c.Scores["mesp"].WAPE, c.Scores["dense"].WAPE, c.Scores["naive"].WAPE)
	}
	fmt.Fprintf(&b, "\n%-18s %15s %12s\n", "policy", "cold-start rate", "idle minutes")
	names := make([]string, 0, len(d.Provisioning))
	for n := range d.Provisioning {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		o := d.Provisioning[n]
		fmt.Fprintf(&b, "%-18s %15.4f %12d\n", n, o.ColdStartRate, o.IdleMinutes)
	}
	for _, p := range d.PrewarmCurve {
		fmt.Fprintf(&b, "%-18s %15.4f %12d\n", fmt.Sprintf("  prewarm@%g", p.Threshold), p.ColdStartRate, p.IdleMinutes)
	}
	for _, p := range d.PrewarmKACurve {
		fmt.Fprintf(&b, "%-18s %15.4f %12d\n", fmt.Sprintf("  prewarm_ka5@%g", p.Threshold), p.ColdStartRate, p.IdleMinutes)
	}
	keys := make([]string, 0, len(d.Ratios))
	for k := range d.Ratios {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b.WriteString("\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "%-45s %.4f\n", k, d.Ratios[k])
	}
	return b.String()
}

// Plots writes examples.png (a few functions: history, actual, each
// forecast), clusters.png (WAPE by cluster, mesp vs dense) and
// provisioning.png (cold starts vs idle minutes).
func Plots(dir string, fns []trace.Function, res *backtest.Result, prov map[string]provision.Outcome) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	d := New(res, prov, len(fns))
	if err := examples(dir, fns, res); err != nil {
		return err
	}
	var labels []string
	var mesp, dense []float64
	for _, c := range d.PerCluster {
		name := strconv.Itoa(c.Cluster)
		if c.Cluster < 0 {
			name = "OOD"
		}
		labels = append(labels, fmt.Sprintf("%s (n=%d)", name, c.Functions))
		mesp = append(mesp, c.Scores["mesp"].WAPE)
		dense = append(dense, c.Scores["dense"].WAPE)
	}
	if len(labels) > 0 {
		if err := plots.Bars(filepath.Join(dir, "clusters.png"), "WAPE by routed cluster (lower is better)", "WAPE", labels,
			[]string{"mesp", "dense"}, [][]float64{mesp, dense}); err != nil {
			return err
		}
	}
	var curve, curveKA, points []plots.Point
	for _, p := range d.PrewarmCurve {
		curve = append(curve, plots.Point{Name: "mesp_prewarm (thresholds)", X: float64(p.IdleMinutes), Y: p.ColdStartRate})
	}
	for _, p := range d.PrewarmKACurve {
		curveKA = append(curveKA, plots.Point{Name: "mesp_prewarm + 5-min keep-alive", X: float64(p.IdleMinutes), Y: p.ColdStartRate})
	}
	for _, n := range []string{"keepalive10", "hybrid_histogram"} {
		o := d.Provisioning[n]
		points = append(points, plots.Point{Name: n, X: float64(o.IdleMinutes), Y: o.ColdStartRate})
	}
	return plots.TradeOff(filepath.Join(dir, "provisioning.png"), "Cold starts vs idle memory, minutes 1081-1440",
		"idle instance-minutes", "cold-start rate", [][]plots.Point{curve, curveKA}, points)
}

// examples plots four functions spread over the busyness range at the
// 1260 origin.
func examples(dir string, fns []trace.Function, res *backtest.Result) error {
	order := make([]int, len(fns))
	total := make([]float64, len(fns))
	for i, f := range fns {
		order[i] = i
		for _, v := range f.Counts {
			total[i] += v
		}
	}
	sort.Slice(order, func(a, b int) bool { return total[order[a]] < total[order[b]] })
	const oi, t = 3, 1260
	for k, q := range []float64{0.3, 0.55, 0.8, 0.95} {
		i := order[int(q*float64(len(order)-1))]
		f := fns[i]
		x := func(lo, hi int) []float64 {
			out := make([]float64, hi-lo)
			for j := range out {
				out[j] = float64(lo + j + 1)
			}
			return out
		}
		series := []plots.Series{
			{Name: "history", X: x(t-180, t), Y: f.Counts[t-180 : t]},
			{Name: "actual", X: x(t, t+60), Y: f.Counts[t : t+60]},
		}
		for _, name := range []string{"mesp", "dense", "naive", "mean60"} {
			series = append(series, plots.Series{Name: name, X: x(t, t+60), Y: res.Forecasts[name][i][oi], Dashed: true})
		}
		title := fmt.Sprintf("function %s… (%.0f invocations/day), origin minute %d", f.ID[:min(10, len(f.ID))], total[i], t)
		if err := plots.Lines(filepath.Join(dir, fmt.Sprintf("example-%d.png", k+1)), title, "minute of day", "invocations/minute", series, 800, 360); err != nil {
			return err
		}
	}
	return nil
}
