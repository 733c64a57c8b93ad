package backtest

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

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
	band := make([][]*Accumulator, len(VolumeBands))
	funcs := make([]int, len(VolumeBands))
	for i, f := range fns {
		b := volumeBand(f.Counts)
		if band[b] == nil {
			for range fcs {
				band[b] = append(band[b], NewAccumulator())
			}
		}
		funcs[b]++
		for k, fc := range fcs {
			for oi, t := range Origins {
				band[b][k].Add(i, scales[i], res.Forecasts[fc.Name][i][oi], f.Counts[t:t+Horizon])
			}
		}
	}
	var out []VolumeMetrics
	for b, accs := range band {
		if accs == nil {
			continue
		}
		vm := VolumeMetrics{Band: bandName(b), Functions: funcs[b], Scores: map[string]Metrics{}}
		for k, fc := range fcs {
			vm.Scores[fc.Name] = accs[k].Metrics()
		}
		out = append(out, vm)
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
