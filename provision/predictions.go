package provision

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
)

// ReadPredictions reads a peer's minutely probabilities, a CSV with the
// header function,minute,p_invoke (minute m's probability made from
// minutes 1..m-1), for the given functions in their order. Every function
// must have every minute Start..End, each once, with a probability in
// [0, 1].
func ReadPredictions(path string, functions []string) ([][]float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("provision: %w", err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.ReuseRecord = true
	head, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("provision: %s: header: %w", path, err)
	}
	if len(head) != 3 || head[0] != "function" || head[1] != "minute" || head[2] != "p_invoke" {
		return nil, fmt.Errorf("provision: %s: header %v, want function,minute,p_invoke", path, head)
	}
	at := make(map[string]int, len(functions))
	out := make([][]float64, len(functions))
	seen := make([][]bool, len(functions))
	for i, id := range functions {
		at[id] = i
		out[i] = make([]float64, End-Start+1)
		seen[i] = make([]bool, End-Start+1)
	}
	for line := 2; ; line++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("provision: %s: %w", path, err)
		}
		i, ok := at[rec[0]]
		if !ok {
			continue // a function not evaluated here
		}
		m, err := strconv.Atoi(rec[1])
		if err != nil || m < Start || m > End {
			return nil, fmt.Errorf("provision: %s:%d: minute %q, want %d..%d", path, line, rec[1], Start, End)
		}
		p, err := strconv.ParseFloat(rec[2], 64)
		if err != nil || math.IsNaN(p) || p < 0 || p > 1 {
			return nil, fmt.Errorf("provision: %s:%d: p_invoke %q, want a probability", path, line, rec[2])
		}
		if seen[i][m-Start] {
			return nil, fmt.Errorf("provision: %s:%d: function %s minute %d given twice", path, line, rec[0], m)
		}
		seen[i][m-Start] = true
		out[i][m-Start] = p
	}
	for i, s := range seen {
		for k, ok := range s {
			if !ok {
				return nil, fmt.Errorf("provision: %s: function %s has no p_invoke for minute %d", path, functions[i], Start+k)
			}
		}
	}
	return out, nil
}
