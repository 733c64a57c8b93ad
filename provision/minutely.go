package provision

import (
	"context"
	"fmt"
)

// NextMinute answers, for a batch of histories (each the minutes 1..m-1 of
// one function), the probability that each function is invoked in minute
// m. It is how a platform runs a forecaster: once a minute, on what it has
// seen so far.
type NextMinute func(ctx context.Context, histories [][]float64) ([]float64, error)

// MinutelyLoop runs the platform's loop over minutes Start..End for every
// function: p[f][m-Start] is next's answer for minute m given minutes
// 1..m-1 of function f. The histories passed are capped slices, so nothing
// of minute m or later can reach the policy, not even by reslicing.
func MinutelyLoop(ctx context.Context, days [][]float64, next NextMinute, progress func(done, total int)) ([][]float64, error) {
	p := make([][]float64, len(days))
	for i, d := range days {
		if len(d) < End {
			return nil, fmt.Errorf("provision: function %d has %d minutes, want %d", i, len(d), End)
		}
		p[i] = make([]float64, End-Start+1)
	}
	hist := make([][]float64, len(days))
	for m := Start; m <= End; m++ {
		for i, d := range days {
			hist[i] = d[: m-1 : m-1]
		}
		got, err := next(ctx, hist)
		if err != nil {
			return nil, fmt.Errorf("provision: minute %d: %w", m, err)
		}
		if len(got) != len(days) {
			return nil, fmt.Errorf("provision: minute %d: %d answers for %d functions", m, len(got), len(days))
		}
		for i, v := range got {
			p[i][m-Start] = v
		}
		if progress != nil {
			progress(m-Start+1, End-Start+1)
		}
	}
	return p, nil
}

// AtLeast is the minutely policy: warm in minute m iff p[m-Start] (made at
// m-1) is at least threshold.
func AtLeast(p []float64, threshold float64) []bool {
	warm := make([]bool, len(p))
	for i, v := range p {
		warm[i] = v >= threshold
	}
	return warm
}
