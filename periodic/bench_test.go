package periodic

import (
	"testing"

	"github.com/mesp-project/mesp/internal/fixture"
)

// BenchmarkDetect is the timers' expert's cost per routed forecast: one
// Detect over a real day (the 100-row fixture, each row's first 1,200
// minutes, as the server sees them), reported per pattern.
func BenchmarkDetect(b *testing.B) {
	rows := fixture.Rows(b)
	for b.Loop() {
		for _, f := range rows {
			Detect(f.Counts[:1200])
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(rows))/1e3, "us/pattern")
}
