package backtest_test

import (
	"math"
	"slices"
	"testing"

	"github.com/mesp-project/mesp/backtest"
	"github.com/mesp-project/mesp/internal/fixture"
)

// Go's evaluation and Python's training score the same thing: the same
// origins and horizon, and on the same real rows the same windows, the
// same naive forecast and the same MAE (training/mesp_training: data.py's
// EVAL_ORIGINS and windows, fit.py's mae and naive_mae).
func TestEvaluationAgreesWithTraining(t *testing.T) {
	fns := fixture.Rows(t)
	rows := make([][]float64, len(fns))
	for i, f := range fns {
		rows[i] = f.Counts
	}
	var py struct {
		Horizon   int     `json:"horizon"`
		Origins   []int   `json:"origins"`
		Pairs     int     `json:"pairs"`
		NaiveMAE  float64 `json:"naive_mae"`
		Mean60MAE float64 `json:"mean60_mae"`
	}
	fixture.RunPython(t, rows, &py, "-c", `import json, sys
import numpy as np
from mesp_training.contract import HORIZON
from mesp_training.data import EVAL_ORIGINS, windows
from mesp_training.fit import mae, naive_mae
series = np.asarray(json.load(sys.stdin), np.float64)
x, y = windows(series, 240, EVAL_ORIGINS)
mean60 = np.repeat(x[:, -60:].mean(axis=1, keepdims=True), HORIZON, axis=1)
print(json.dumps({"horizon": HORIZON, "origins": list(EVAL_ORIGINS), "pairs": len(y),
                  "naive_mae": naive_mae(x, y), "mean60_mae": mae(mean60, y)}))`)
	if py.Horizon != backtest.Horizon || !slices.Equal(py.Origins, backtest.Origins) {
		t.Fatalf("Python horizon %d origins %v; Go %d %v", py.Horizon, py.Origins, backtest.Horizon, backtest.Origins)
	}
	naive, mean60 := backtest.NewAccumulator(), backtest.NewAccumulator()
	for i, c := range rows {
		for _, t0 := range backtest.Origins {
			actual := c[t0 : t0+backtest.Horizon]
			naive.Add(i, 1, backtest.Naive(c[:t0]), actual)
			mean60.Add(i, 1, backtest.Mean60(c[:t0]), actual)
		}
	}
	// training's windows are float32: agreement to float32's precision
	n, m := naive.Metrics(), mean60.Metrics()
	if n.Pairs != py.Pairs || math.Abs(n.MAE-py.NaiveMAE) > 1e-6*py.NaiveMAE || math.Abs(m.MAE-py.Mean60MAE) > 1e-6*py.Mean60MAE {
		t.Fatalf("Go: %d pairs, naive MAE %.12f, mean60 MAE %.12f; Python: %d, %.12f, %.12f", n.Pairs, n.MAE, m.MAE, py.Pairs, py.NaiveMAE, py.Mean60MAE)
	}
}
