// Package report turns a backtest and a provisioning simulation into the
// JSON document, the table and the plots of `mesp eval`.
package report

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/mesp-project/mesp/backtest"
	"github.com/mesp-project/mesp/plots"
	"github.com/mesp-project/mesp/provision"
	"github.com/mesp-project/mesp/trace"
)

// Document is the JSON of `mesp eval`; the keys are a contract.
type Document struct {
	Rows         int                         `json:"rows"`
	Forecasters  map[string]backtest.Metrics `json:"forecasters"`
	PerCluster   []backtest.ClusterMetrics   `json:"per_cluster"`
	ByVolume     []backtest.VolumeMetrics    `json:"by_daily_total"`
	ByBehaviour  []backtest.BehaviourMetrics `json:"by_behaviour"`
	Provisioning provision.Report            `json:"provisioning"`
	// Scaling is the replica simulation (EVALUATION.md section 4).
	Scaling *provision.ScalingReport `json:"scaling,omitempty"`
	// Ratios: mesp WAPE over dense and over the better of naive/mean60.
	Ratios map[string]float64 `json:"ratios"`
}

// PeerCounts names the LightGBM count peer's forecasts (mesp eval
// --peer-counts).
const PeerCounts = "peer_lightgbm"

// PeerCountsWhole is the same peer rounded to whole invocations, as MESP's
// forecasts are.
const PeerCountsWhole = "peer_lightgbm_whole"

// PeerMean is the count peer's mean form (Tweedie deviance).
const PeerMean = "peer_lightgbm_mean"

// MespMedian is MESP's median output, scored beside its forecast (the
// expected count) where the two may differ (forecast.Catalog.ExpectedApart).
const MespMedian = "mesp_median"

// New assembles the document.
func New(res *backtest.Result, prov provision.Report, rows int) Document {
	d := Document{Rows: rows, Forecasters: res.Forecasters, PerCluster: res.PerCluster, ByVolume: res.ByVolume,
		ByBehaviour: res.ByBehaviour, Provisioning: prov, Ratios: map[string]float64{}}
	// The minute-level ratios are the median's (what minute WAPE rewards);
	// the hour's are the forecast's, the expected count.
	m, dn := res.Forecasters["mesp"], res.Forecasters["dense"]
	hour := m
	if med, ok := res.Forecasters[MespMedian]; ok {
		m = med
	}
	d.Ratios["mesp_hour_wape_over_mean60"] = hour.HourWAPE / res.Forecasters["mean60"].HourWAPE
	if p, ok := res.Forecasters[PeerCounts]; ok {
		d.Ratios["mesp_hour_wape_over_peer"] = hour.HourWAPE / p.HourWAPE
	}
	if p, ok := res.Forecasters[PeerMean]; ok {
		d.Ratios["mesp_hour_wape_over_peer_mean"] = hour.HourWAPE / p.HourWAPE
	}
	best := math.Min(res.Forecasters["naive"].WAPE, res.Forecasters["mean60"].WAPE)
	d.Ratios["mesp_wape_over_dense"] = m.WAPE / dn.WAPE
	d.Ratios["mesp_wape_over_best_baseline"] = m.WAPE / best
	d.Ratios["dense_wape_over_best_baseline"] = dn.WAPE / best
	if p, ok := res.Forecasters[PeerCounts]; ok {
		d.Ratios["mesp_wape_over_peer"] = m.WAPE / p.WAPE
	}
	if p, ok := res.Forecasters[PeerCountsWhole]; ok {
		d.Ratios["mesp_wape_over_peer_whole"] = m.WAPE / p.WAPE
	}
	return d
}

// Table is a human-readable summary.
func Table(d Document) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-19s %10s %10s %8s %10s %11s %10s %10s\n", "forecaster", "MAE", "RMSE", "WAPE", "MASE mean", "MASE median", "hour WAPE", "hour bias")
	names := []string{"mesp", "dense", "naive", "mean60"}
	for _, p := range []string{MespMedian, PeerCounts, PeerCountsWhole, PeerMean} {
		if _, ok := d.Forecasters[p]; ok {
			names = append(names, p)
		}
	}
	for _, name := range names {
		m := d.Forecasters[name]
		fmt.Fprintf(&b, "%-19s %10.3f %10.3f %8.4f %10.3f %11.3f %10.4f %10.4f\n", name, m.MAE, m.RMSE, m.WAPE, m.MASEMean, m.MASEMedian, m.HourWAPE, m.HourBias)
	}
	for _, by := range []struct {
		title string
		score func(backtest.Metrics) float64
	}{{"WAPE", func(m backtest.Metrics) float64 { return m.WAPE }},
		{"hour WAPE", func(m backtest.Metrics) float64 { return m.HourWAPE }},
		{"hour bias (sum F / sum Y)", func(m backtest.Metrics) float64 { return m.HourBias }}} {
		fmt.Fprintf(&b, "\n%s by daily total (invocations)\n%-14s %9s", by.title, "band", "functions")
		for _, name := range names {
			fmt.Fprintf(&b, " %19s", name)
		}
		b.WriteString("\n")
		for _, v := range d.ByVolume {
			fmt.Fprintf(&b, "%-14s %9d", v.Band, v.Functions)
			for _, name := range names {
				fmt.Fprintf(&b, " %19.4f", by.score(v.Scores[name]))
			}
			b.WriteString("\n")
		}
	}
	fmt.Fprintf(&b, "\nby behaviour (timer: a dominant period in minutes 1..%d)\n%-8s %9s", backtest.ScaleEnd, "group", "functions")
	for _, name := range names {
		fmt.Fprintf(&b, " %19s", name+" WAPE")
	}
	for _, name := range names {
		fmt.Fprintf(&b, " %19s", name+" hour")
	}
	b.WriteString("\n")
	for _, v := range d.ByBehaviour {
		fmt.Fprintf(&b, "%-8s %9d", v.Behaviour, v.Functions)
		for _, name := range names {
			fmt.Fprintf(&b, " %19.4f", v.Scores[name].WAPE)
		}
		for _, name := range names {
			fmt.Fprintf(&b, " %19.4f", v.Scores[name].HourWAPE)
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "\n%-8s %9s %12s %12s %12s %12s %12s\n", "cluster", "functions", "mesp WAPE", "dense WAPE", "naive WAPE", "mesp h-bias", "dense h-bias")
	for _, c := range d.PerCluster {
		name := strconv.Itoa(c.Cluster)
		if c.Cluster < 0 {
			name = "OOD"
		}
		fmt.Fprintf(&b, "%-8s %9d %12.4f %12.4f %12.4f %12.4f %12.4f\n", name, c.Functions, c.Scores["mesp"].WAPE, c.Scores["dense"].WAPE, c.Scores["naive"].WAPE,
			c.Scores["mesp"].HourBias, c.Scores["dense"].HourBias)
	}
	p := d.Provisioning
	row := func(name string, o provision.Outcome) {
		fmt.Fprintf(&b, "%-30s %11d %12d %15.4f %12.4f\n", name, o.ColdStarts, o.IdleMinutes, o.ColdStartRate, o.P75FunctionColdStartRate)
	}
	fmt.Fprintf(&b, "\n%-30s %11s %12s %15s %12s\n", "policy", "cold starts", "idle minutes", "cold-start rate", "p75 fn rate")
	for _, w := range p.KeepAlive {
		row(w.Label(), w.Outcome)
	}
	row("hybrid_histogram", p.HybridHistogram)
	if p.MespMinutelyDefault != nil {
		row(fmt.Sprintf("mesp_minutely_default@%g", p.MespMinutelyDefault.Threshold), p.MespMinutelyDefault.Outcome)
	}
	for _, c := range []struct {
		name  string
		curve []provision.ThresholdPoint
	}{{"mesp_minutely", p.MespMinutely}, {"dense_minutely", p.DenseMinutely}, {"peer_lightgbm_minutely", p.PeerLightGBMMinutely}, {"mesp_hourly", p.MespHourly}} {
		for _, pt := range c.curve {
			row(fmt.Sprintf("  %s@%g", c.name, pt.Threshold), pt.Outcome)
		}
	}
	writeComparison(&b, p.Comparison, p.MespMinutelyDefault)
	if len(p.Silent) > 0 {
		fmt.Fprintf(&b, "\nsilent functions (last S hours zero): share of minutes kept warm\n%-8s %9s", "silent", "functions")
		cols := []string{"keepalive10", "hybrid_histogram", "mesp_minutely_default", "dense_minutely_default"}
		for _, c := range cols {
			fmt.Fprintf(&b, " %22s", c)
		}
		b.WriteString("\n")
		for _, sr := range p.Silent {
			fmt.Fprintf(&b, "%-8s %9d", fmt.Sprintf("%dh", sr.SilentHours), sr.Functions)
			for _, c := range cols {
				fmt.Fprintf(&b, " %22.4f", float64(sr.Policies[c].IdleMinutes)/float64(sr.Minutes))
			}
			b.WriteString("\n")
		}
	}
	if mix := p.PlatformMix; mix != nil {
		b.WriteString("\nplatform mix (the active functions and one silent copy of each):")
		writeComparison(&b, mix.Comparison, mix.MespMinutelyDefault)
	}
	for _, v := range p.Comparison.MespVsKeepAlive {
		fmt.Fprintf(&b, "  mesp_minutely vs keepalive%-3d beaten %-5v cold starts %.3fx at its idle\n", v.Window, v.Beaten, v.ColdStartsRatio)
	}
	writeScaling(&b, d.Scaling)
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

// writeScaling prints the replica simulation's reading (EVALUATION.md
// section 4): each curve's deficit at reactive scaling's cost with the
// HPA's 5-minute window, and the served quantiles' coverage.
func writeScaling(b *strings.Builder, sc *provision.ScalingReport) {
	if sc == nil || sc.AtReactive5 == nil {
		return
	}
	at := sc.AtReactive5
	fmt.Fprintf(b, "\nreplicas: %d of %d functions need 2 or more at %g invocations a replica-minute\n", sc.Functions, sc.All, sc.Target)
	fmt.Fprintf(b, "  at reactive (5-minute window)'s %d replica-minutes, invocations beyond capacity: reactive %.0f\n", at.ReplicaMinutes, at.ReactiveDeficit)
	curve := func(name string, deficit float64) {
		if deficit > 0 {
			fmt.Fprintf(b, "  %-32s %12.0f  %.3fx reactive's\n", name, deficit, deficit/at.ReactiveDeficit)
		}
	}
	curve("mesp", at.MespDeficit)
	curve("mesp floored at the last minute", at.MespFlooredDeficit)
	curve("peer_lightgbm_quantile", at.PeerDeficit)
	levels := slices.SortedFunc(maps.Keys(sc.Coverage), func(x, y string) int {
		a, _ := strconv.ParseFloat(x, 64)
		c, _ := strconv.ParseFloat(y, 64)
		return cmp.Compare(a, c)
	})
	b.WriteString("  coverage a minute ahead:")
	for _, q := range levels {
		fmt.Fprintf(b, " q%s %.4f", q, sc.Coverage[q])
	}
	b.WriteString("\n")
}

// Plots writes examples.png (a few functions: history, actual, each
// forecast), clusters.png (WAPE by cluster, mesp vs dense) and
// provisioning.png (cold-start rate vs idle minutes: the keep-alive
// frontier, the hybrid histogram and every policy's curve).
func Plots(dir string, fns []trace.Function, d Document, res *backtest.Result) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
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
	p := d.Provisioning
	var frontier []plots.Point
	for _, w := range p.KeepAlive {
		frontier = append(frontier, plots.Point{Name: "keep-alive 0..60 min", X: float64(w.IdleMinutes), Y: w.ColdStartRate})
	}
	curves := [][]plots.Point{frontier}
	for _, c := range []struct {
		name  string
		curve []provision.ThresholdPoint
	}{{"mesp_minutely", p.MespMinutely}, {"dense_minutely", p.DenseMinutely}, {"peer_lightgbm_minutely", p.PeerLightGBMMinutely}, {"mesp_hourly (+5-min keep-alive)", p.MespHourly}} {
		var pts []plots.Point
		for _, pt := range c.curve {
			pts = append(pts, plots.Point{Name: c.name, X: float64(pt.IdleMinutes), Y: pt.ColdStartRate})
		}
		curves = append(curves, pts)
	}
	points := []plots.Point{{Name: "hybrid_histogram", X: float64(p.HybridHistogram.IdleMinutes), Y: p.HybridHistogram.ColdStartRate},
		{Name: "keepalive10", X: float64(p.Comparison.Reference.IdleMinutes), Y: p.Comparison.Reference.ColdStartRate}}
	if m := p.MespMinutelyDefault; m != nil {
		points = append(points, plots.Point{Name: "mesp_minutely_default", X: float64(m.IdleMinutes), Y: m.ColdStartRate})
	}
	if err := plots.TradeOff(filepath.Join(dir, "provisioning.png"), "Cold starts vs idle memory, minutes 1081-1440",
		"idle instance-minutes", "cold-start rate (log)", curves, points); err != nil {
		return err
	}
	return scalingPlot(dir, d.Scaling)
}

// scalingPlot draws scaling.png: each replica policy's deficit (the share
// of invocations beyond its replicas' capacity) against its replica-minutes
// on the busy functions; reactive scaling a curve over its stabilization
// windows, each forecast output a point.
func scalingPlot(dir string, sc *provision.ScalingReport) error {
	if sc == nil || sc.Functions == 0 {
		return nil
	}
	share := func(o provision.ScalingOutcome) float64 { return o.Deficit / max(1, o.Invocations) }
	var reactive []plots.Point
	for _, r := range sc.Reactive {
		reactive = append(reactive, plots.Point{Name: "reactive (windows 0..10 min)", X: float64(r.ReplicaMinutes), Y: share(r.ScalingOutcome)})
	}
	// Curves: MESP's expected count over its leads, its quantiles a minute
	// ahead (the median the lowest), the same held for the HPA's default
	// window, KEDA's default quantile over its leads, the peer over its
	// quantiles; the dense model's median is a point.
	var mean, quantiles, held5, q09, peer, points []plots.Point
	point := func(name string, pt provision.ScalingPoint) plots.Point {
		return plots.Point{Name: name, X: float64(pt.ReplicaMinutes), Y: share(pt.ScalingOutcome)}
	}
	for _, pt := range sc.Mesp {
		if pt.Window != nil {
			if *pt.Window == 5 && pt.Output != "mean" {
				held5 = append(held5, point("mesp median..q0.99 held 5 min (HPA window)", pt))
			}
			continue
		}
		switch {
		case pt.Output == "mean":
			mean = append(mean, point("mesp mean (leads 1..10 min)", pt))
		case pt.Output == "median" || pt.Lead == 1:
			quantiles = append(quantiles, point("mesp quantiles 0.5..0.99, a minute ahead", pt))
		}
		if pt.Quantile != nil && pt.Output == "" && *pt.Quantile == 0.9 {
			q09 = append(q09, point("mesp q0.9 (leads 1..10 min)", pt))
		}
	}
	for _, pt := range sc.Peer {
		peer = append(peer, point("peer LightGBM quantiles 0.5..0.99", pt))
	}
	var floored []plots.Point
	for _, pt := range frontier(sc.MespFloored) {
		floored = append(floored, point("mesp floored at the last minute (its frontier over outputs and holds)", pt))
	}
	for _, pt := range sc.Dense {
		points = append(points, point("dense "+pt.Output, pt))
	}
	curves := [][]plots.Point{reactive, mean, quantiles, peer, held5, q09, floored}
	return plots.TradeOff(filepath.Join(dir, "scaling.png"),
		fmt.Sprintf("Replicas for %d busy functions, minutes 1081-1440 (target %g/min)", sc.Functions, sc.Target),
		"replica-minutes", "share of invocations beyond capacity", curves, points)
}

// frontier is the points of pts no cheaper point beats (fewer
// replica-minutes and no more deficit), by replica-minutes.
func frontier(pts []provision.ScalingPoint) []provision.ScalingPoint {
	sorted := slices.Clone(pts)
	slices.SortFunc(sorted, func(a, b provision.ScalingPoint) int {
		return cmp.Or(cmp.Compare(a.ReplicaMinutes, b.ReplicaMinutes), cmp.Compare(a.Deficit, b.Deficit))
	})
	var out []provision.ScalingPoint
	for _, p := range sorted {
		if len(out) == 0 || p.Deficit < out[len(out)-1].Deficit {
			out = append(out, p)
		}
	}
	return out
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

// writeComparison prints the curves read at the reference keep-alive's
// idle minutes, and the default point against it.
func writeComparison(b *strings.Builder, cmp provision.Comparison, def *provision.ThresholdPoint) {
	fmt.Fprintf(b, "\nat no more idle minutes than keepalive%d (%d idle, %d cold starts):\n", cmp.Reference.Window, cmp.Reference.IdleMinutes, cmp.Reference.ColdStarts)
	policies := make([]string, 0, len(cmp.AtReferenceIdle))
	for n := range cmp.AtReferenceIdle {
		policies = append(policies, n)
	}
	sort.Strings(policies)
	for _, n := range policies {
		x := cmp.AtReferenceIdle[n]
		fmt.Fprintf(b, "  %-24s threshold %-7g cold starts %.3fx, idle %.3fx", n, x.Threshold, x.ColdStartsOverReference, x.IdleOverReference)
		if x.Interpolated > 0 {
			fmt.Fprintf(b, "; at exactly its idle %.1f cold starts (%.3fx)", x.Interpolated, x.InterpolatedOverRef)
		}
		b.WriteString("\n")
	}
	if def != nil && cmp.Reference.ColdStarts > 0 && cmp.Reference.IdleMinutes > 0 {
		fmt.Fprintf(b, "  default point (threshold %g): cold starts %.3fx keepalive%d's, idle %.3fx\n", def.Threshold,
			float64(def.ColdStarts)/float64(cmp.Reference.ColdStarts), cmp.Reference.Window, float64(def.IdleMinutes)/float64(cmp.Reference.IdleMinutes))
	}
}
