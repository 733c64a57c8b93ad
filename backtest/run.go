package backtest

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/mesp-project/mesp/periodic"
	"github.com/mesp-project/mesp/trace"
)

// Predict forecasts the next Horizon minutes for a batch of histories
// (each the minutes 1..t of one function) and says which cluster the
// router chose for each (-1 when not routed).
type Predict func(ctx context.Context, histories [][]float64) (forecasts [][]float64, clusters []int, err error)

// Forecaster is one named contender.
type Forecaster struct {
	Name    string
	Predict Predict
}

// Baselines are naive and mean60.
func Baselines() []Forecaster {
	wrap := func(f func([]float64) []float64) Predict {
		return func(_ context.Context, hs [][]float64) ([][]float64, []int, error) {
			out := make([][]float64, len(hs))
			cl := make([]int, len(hs))
			for i, h := range hs {
				out[i], cl[i] = f(h), -1
			}
			return out, cl, nil
		}
	}
	return []Forecaster{{"naive", wrap(Naive)}, {"mean60", wrap(Mean60)}}
}

// Result is the whole backtest.
type Result struct {
	Rows        int                `json:"rows"`
	Forecasters map[string]Metrics `json:"forecasters"`
	PerCluster  []ClusterMetrics   `json:"per_cluster"`
	// ByVolume breaks scores down by the function's daily total.
	ByVolume []VolumeMetrics `json:"by_daily_total"`
	// ByBehaviour breaks scores down by behaviour (Behaviours).
	ByBehaviour []BehaviourMetrics `json:"by_behaviour"`
	// Forecasts[name][function][origin index] keeps every forecast for the
	// provisioning simulation and the plots.
	Forecasts map[string][][][]float64 `json:"-"`
	// Routes[function][origin index] is the router's cluster (from the
	// forecaster named RoutedBy).
	Routes [][]int `json:"-"`
}

// ClusterMetrics breaks scores down by the router's choice.
type ClusterMetrics struct {
	Cluster   int                `json:"cluster"`
	Functions int                `json:"functions"`
	Pairs     int                `json:"pairs"`
	Scores    map[string]Metrics `json:"-"`
}

// VolumeBands are the daily-total bands of the volume breakdown:
// [lower, next lower) invocations a day.
var VolumeBands = []float64{0, 1e3, 1e4, 1e5}

// VolumeMetrics is one band's scores.
type VolumeMetrics struct {
	Band      string             `json:"band"`
	Functions int                `json:"functions"`
	Scores    map[string]Metrics `json:"scores"`
}

// volumeBand is the index in VolumeBands of a day's total.
func volumeBand(counts []float64) int {
	var total float64
	for _, v := range counts {
		total += v
	}
	b := 0
	for i, lo := range VolumeBands {
		if total >= lo {
			b = i
		}
	}
	return b
}

func bandName(i int) string {
	if i+1 < len(VolumeBands) {
		return fmt.Sprintf("%g-%g", VolumeBands[i], VolumeBands[i+1])
	}
	return fmt.Sprintf(">=%g", VolumeBands[i])
}

// Run backtests every forecaster on the same functions and origins. The
// per-cluster breakdown uses the clusters reported by routedBy.
func Run(ctx context.Context, fns []trace.Function, fcs []Forecaster, routedBy string, progress func(done, total int)) (*Result, error) {
	res := &Result{Rows: len(fns), Forecasters: map[string]Metrics{}, Forecasts: map[string][][][]float64{}}
	scales := make([]float64, len(fns))
	for i, f := range fns {
		if len(f.Counts) < Origins[len(Origins)-1]+Horizon {
			return nil, fmt.Errorf("backtest: function %s has %d minutes, want at least %d", f.ID, len(f.Counts), Origins[len(Origins)-1]+Horizon)
		}
		scales[i] = NaiveScale(f.Counts)
	}
	total := len(fcs) * len(Origins)
	step := 0
	acc := map[string]*Accumulator{}
	perCluster := map[int]map[string]*Accumulator{}
	res.Routes = make([][]int, len(fns))
	for i := range res.Routes {
		res.Routes[i] = make([]int, len(Origins))
	}
	for _, fc := range fcs {
		acc[fc.Name] = NewAccumulator()
		store := make([][][]float64, len(fns))
		for i := range store {
			store[i] = make([][]float64, len(Origins))
		}
		res.Forecasts[fc.Name] = store
	}
	for oi, t := range Origins {
		hist := make([][]float64, len(fns))
		for i, f := range fns {
			hist[i] = f.Counts[:t]
		}
		for _, fc := range fcs {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			preds, clusters, err := fc.Predict(ctx, hist)
			if err != nil {
				return nil, fmt.Errorf("backtest: %s at origin %d: %w", fc.Name, t, err)
			}
			if fc.Name == routedBy {
				for i := range fns {
					res.Routes[i][oi] = clusters[i]
				}
			}
			for i, f := range fns {
				res.Forecasts[fc.Name][i][oi] = preds[i]
				acc[fc.Name].Add(i, scales[i], preds[i], f.Counts[t:t+Horizon])
			}
			step++
			if progress != nil {
				progress(step, total)
			}
		}
	}
	for name, a := range acc {
		res.Forecasters[name] = a.Metrics()
	}
	res.ByVolume = byVolume(fns, fcs, res, scales)
	res.ByBehaviour = byBehaviour(fns, fcs, res, scales)
	if routedBy != "" {
		for i, f := range fns {
			for oi, t := range Origins {
				c := res.Routes[i][oi]
				if perCluster[c] == nil {
					perCluster[c] = map[string]*Accumulator{}
				}
				for _, fc := range fcs {
					a := perCluster[c][fc.Name]
					if a == nil {
						a = NewAccumulator()
						perCluster[c][fc.Name] = a
					}
					a.Add(i, scales[i], res.Forecasts[fc.Name][i][oi], f.Counts[t:t+Horizon])
				}
			}
		}
		ids := make([]int, 0, len(perCluster))
		for c := range perCluster {
			ids = append(ids, c)
		}
		sort.Ints(ids)
		for _, c := range ids {
			cm := ClusterMetrics{Cluster: c, Scores: map[string]Metrics{}}
			for name, a := range perCluster[c] {
				cm.Scores[name] = a.Metrics()
				cm.Functions = a.Functions()
				cm.Pairs = cm.Scores[name].Pairs
			}
			res.PerCluster = append(res.PerCluster, cm)
		}
	}
	return res, nil
}

func byVolume(fns []trace.Function, fcs []Forecaster, res *Result, scales []float64) []VolumeMetrics {
	var out []VolumeMetrics
	for b, g := range byGroup(fns, fcs, res, scales, len(VolumeBands), func(f trace.Function) int { return volumeBand(f.Counts) }) {
		if g.functions > 0 {
			out = append(out, VolumeMetrics{Band: bandName(b), Functions: g.functions, Scores: g.scores})
		}
	}
	return out
}

// Behaviours name the groups of the behaviour breakdown: timer-like
// functions (a dominant period in minutes 1..ScaleEnd, periodic.Detect:
// the history before the first origin only) and the others.
var Behaviours = []string{"timer", "other"}

// BehaviourMetrics is one behaviour's scores.
type BehaviourMetrics struct {
	Behaviour string             `json:"behaviour"`
	Functions int                `json:"functions"`
	Scores    map[string]Metrics `json:"scores"`
}

// Behaviour is the index in Behaviours of a function's day.
func Behaviour(counts []float64) int {
	if _, ok := periodic.Detect(counts[:min(len(counts), ScaleEnd)]); ok {
		return 0
	}
	return 1
}

func byBehaviour(fns []trace.Function, fcs []Forecaster, res *Result, scales []float64) []BehaviourMetrics {
	out := []BehaviourMetrics{}
	for b, g := range byGroup(fns, fcs, res, scales, len(Behaviours), func(f trace.Function) int { return Behaviour(f.Counts) }) {
		out = append(out, BehaviourMetrics{Behaviour: Behaviours[b], Functions: g.functions, Scores: g.scores})
	}
	return out
}

// groupScores is one group's function count and each forecaster's scores.
type groupScores struct {
	functions int
	scores    map[string]Metrics
}

// byGroup scores every forecaster on each of n groups of functions.
func byGroup(fns []trace.Function, fcs []Forecaster, res *Result, scales []float64, n int, group func(trace.Function) int) []groupScores {
	accs := make([][]*Accumulator, n)
	out := make([]groupScores, n)
	for g := range accs {
		for range fcs {
			accs[g] = append(accs[g], NewAccumulator())
		}
	}
	for i, f := range fns {
		g := group(f)
		out[g].functions++
		for k, fc := range fcs {
			for oi, t := range Origins {
				accs[g][k].Add(i, scales[i], res.Forecasts[fc.Name][i][oi], f.Counts[t:t+Horizon])
			}
		}
	}
	for g := range out {
		out[g].scores = map[string]Metrics{}
		for k, fc := range fcs {
			out[g].scores[fc.Name] = accs[g][k].Metrics()
		}
	}
	return out
}

// MarshalJSON writes each forecaster's scores as a key beside the counts:
// {"cluster": 3, "functions": 40, "pairs": 240, "mesp": {...}, "dense": {...}}.
func (c ClusterMetrics) MarshalJSON() ([]byte, error) {
	m := map[string]any{"cluster": c.Cluster, "functions": c.Functions, "pairs": c.Pairs}
	for k, v := range c.Scores {
		m[k] = v
	}
	return json.Marshal(m)
}
