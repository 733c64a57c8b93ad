package provision

import (
	"fmt"
	"math"
	"strconv"

	"github.com/mesp-project/mesp/internal/peertable"
)

// ReadPredictions reads a peer's minutely probabilities, a CSV with the
// header function,minute,p_invoke (minute m's probability made from
// minutes 1..m-1), for the given functions in their order. Every function
// must have every minute Start..End, each once, with a probability in
// [0, 1].
func ReadPredictions(path string, functions []string) ([][]float64, error) {
	minutes := make([]int, End-Start+1)
	for k := range minutes {
		minutes[k] = Start + k
	}
	table, err := peertable.Read(path, peertable.Spec{Key: "minute", Values: []string{"p_invoke"}, Want: "a probability",
		Valid: func(p float64) bool { return p >= 0 && p <= 1 }}, functions, minutes)
	if err != nil {
		return nil, fmt.Errorf("provision: %w", err)
	}
	out := make([][]float64, len(functions))
	for i, rows := range table {
		out[i] = make([]float64, len(rows))
		for k, row := range rows {
			out[i][k] = row[0]
		}
	}
	return out, nil
}

// PeerQuantileLevels are the quantiles of the LightGBM quantile peer's
// curve (scripts/peer_lightgbm_quantile.py writes exactly these).
var PeerQuantileLevels = []float64{0.5, 0.75, 0.9, 0.95, 0.99}

// ReadQuantilePredictions reads a quantile peer's minutely forecasts, a
// CSV with the header function,minute,q0.5,...,q0.99 (PeerQuantileLevels;
// minute m's quantiles of its count made from minutes 1..m-1), for the
// given functions in their order: one QuantileAhead per level, each
// minute's forecast of itself alone. Every function must have every
// minute Start..End, each once, with finite counts at least 0.
func ReadQuantilePredictions(path string, functions []string) ([]QuantileAhead, error) {
	minutes := make([]int, End-Start+1)
	for k := range minutes {
		minutes[k] = Start + k
	}
	cols := make([]string, len(PeerQuantileLevels))
	for k, q := range PeerQuantileLevels {
		cols[k] = "q" + strconv.FormatFloat(q, 'g', -1, 64)
	}
	table, err := peertable.Read(path, peertable.Spec{Key: "minute", Values: cols, Want: "a count at least 0",
		Valid: func(v float64) bool { return v >= 0 && !math.IsInf(v, 0) }}, functions, minutes)
	if err != nil {
		return nil, fmt.Errorf("provision: %w", err)
	}
	out := make([]QuantileAhead, len(PeerQuantileLevels))
	for k, q := range PeerQuantileLevels {
		out[k] = QuantileAhead{Q: q, Ahead: make([][][]float64, len(functions))}
		for i, rows := range table {
			out[k].Ahead[i] = make([][]float64, len(rows))
			for m, row := range rows {
				out[k].Ahead[i][m] = []float64{row[k]}
			}
		}
	}
	return out, nil
}
