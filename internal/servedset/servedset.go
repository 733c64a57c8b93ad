// Package servedset gives tests the serving path over a copy of the
// shipped models, ONNX Runtime loaded: what `mesp serve` answers with.
// (Package fixture cannot: the forecast package's own tests import it.)
package servedset

import (
	"testing"

	"github.com/mesp-project/mesp/config"
	"github.com/mesp-project/mesp/forecast"
	"github.com/mesp-project/mesp/internal/fixture"
	"github.com/mesp-project/mesp/onnx"
)

// Open loads a copy of the shipped models on one intra-op thread, without
// batching, and closes it at the test's end.
func Open(tb testing.TB) *forecast.Forecaster {
	tb.Helper()
	return OpenCounting(tb, nil)
}

// OpenCounting is Open with every model run counted in runs.
func OpenCounting(tb testing.TB, runs *onnx.RunStats) *forecast.Forecaster {
	tb.Helper()
	if _, err := onnx.Init(config.ORT{}.ORTLibrary()); err != nil {
		tb.Fatal(err)
	}
	fc := forecast.New(fixture.CopyModels(tb), onnx.Options{IntraOpThreads: 1, Stats: runs}, forecast.Batching{})
	if _, err := fc.Reload(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(fc.Close)
	return fc
}
