package provision

import (
	"fmt"

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
