package backtest

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"

	"github.com/mesp-project/mesp/trace"
)

// FromTable is a forecaster whose forecasts were made elsewhere (a peer
// fitted in Python): a CSV with the header function,origin,h1..h60 and one
// row per evaluated function and origin. Every (function, origin) of fns
// and Origins must be there, with Horizon finite, non-negative numbers.
func FromTable(name, path string, fns []trace.Function) (Forecaster, error) {
	f, err := os.Open(path)
	if err != nil {
		return Forecaster{}, fmt.Errorf("backtest: %w", err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = 2 + Horizon
	if _, err := r.Read(); err != nil {
		return Forecaster{}, fmt.Errorf("backtest: %s: header: %w", path, err)
	}
	type key struct {
		id     string
		origin int
	}
	table := map[key][]float64{}
	for line := 2; ; line++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Forecaster{}, fmt.Errorf("backtest: %s: %w", path, err)
		}
		origin, err := strconv.Atoi(rec[1])
		if err != nil {
			return Forecaster{}, fmt.Errorf("backtest: %s:%d: origin %q", path, line, rec[1])
		}
		row := make([]float64, Horizon)
		for h := range row {
			v, err := strconv.ParseFloat(rec[2+h], 64)
			if err != nil || v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
				return Forecaster{}, fmt.Errorf("backtest: %s:%d: h%d %q is not a count forecast", path, line, h+1, rec[2+h])
			}
			row[h] = v
		}
		table[key{rec[0], origin}] = row
	}
	for _, fn := range fns {
		for _, t := range Origins {
			if table[key{fn.ID, t}] == nil {
				return Forecaster{}, fmt.Errorf("backtest: %s has no forecast for function %s at origin %d", path, fn.ID, t)
			}
		}
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
			out[i], cl[i] = table[key{fns[i].ID, len(h)}], -1
		}
		return out, cl, nil
	}}, nil
}
