package backtest

import (
	"context"
	"fmt"
	"math"

	"github.com/mesp-project/mesp/internal/peertable"
	"github.com/mesp-project/mesp/trace"
)

// FromTable is a forecaster whose forecasts were made elsewhere (a peer
// fitted in Python): a CSV with the header function,origin,h1..h60 and one
// row per evaluated function and origin (peertable's layout). Every
// (function, origin) of fns and Origins must be there, once, with Horizon
// finite, non-negative numbers.
func FromTable(name, path string, fns []trace.Function) (Forecaster, error) {
	ids := make([]string, len(fns))
	for i, f := range fns {
		ids[i] = f.ID
	}
	cols := make([]string, Horizon)
	for h := range cols {
		cols[h] = fmt.Sprintf("h%d", h+1)
	}
	table, err := peertable.Read(path, peertable.Spec{Key: "origin", Values: cols, Want: "a count forecast",
		Valid: func(v float64) bool { return v >= 0 && !math.IsInf(v, 0) }}, ids, Origins)
	if err != nil {
		return Forecaster{}, fmt.Errorf("backtest: %w", err)
	}
	originAt := make(map[int]int, len(Origins))
	for k, t := range Origins {
		originAt[t] = k
	}
	// The backtest passes every function's history in fns' order; the
	// origin is the history's length.
	return Forecaster{Name: name, Predict: func(_ context.Context, hs [][]float64) ([][]float64, []int, error) {
		if len(hs) != len(fns) {
			return nil, nil, fmt.Errorf("backtest: %s answers the %d functions it was read for, not %d", name, len(fns), len(hs))
		}
		out := make([][]float64, len(hs))
		cl := make([]int, len(hs))
		for i, h := range hs {
			k, ok := originAt[len(h)]
			if !ok {
				return nil, nil, fmt.Errorf("backtest: %s has no forecasts at origin %d", name, len(h))
			}
			out[i], cl[i] = table[i][k], -1
		}
		return out, cl, nil
	}}, nil
}
