// Package peertable reads the tables that peers fitted outside MESP (in
// Python) hand to the evaluation: a CSV whose header is function, an
// integer key column (an origin, a minute), then value columns, with one
// row per function and key. The whole table is checked: the header, every
// value, no (function, key) given twice, and every one asked for present.
// Rows of functions not asked for are skipped.
package peertable

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
)

// Spec is a table's layout and what its values may be.
type Spec struct {
	Key    string   // the key column's name: origin, minute
	Values []string // the value columns' names
	// Valid says whether a value may stand in the table; Want says what it
	// should be, for the error.
	Valid func(float64) bool
	Want  string
}

// Read returns, for each function (in the given order) and each key (in
// the given order), the row of values.
func Read(path string, s Spec, functions []string, keys []int) ([][][]float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("peer table: %w", err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.ReuseRecord = true
	head, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("peer table %s: header: %w", path, err)
	}
	if want := append([]string{"function", s.Key}, s.Values...); !slices.Equal(head, want) {
		return nil, fmt.Errorf("peer table %s: header %.80v, want %.80v", path, head, want)
	}
	fnAt := make(map[string]int, len(functions))
	for i, id := range functions {
		fnAt[id] = i
	}
	keyAt := make(map[int]int, len(keys))
	for k, key := range keys {
		keyAt[key] = k
	}
	out := make([][][]float64, len(functions))
	for i := range out {
		out[i] = make([][]float64, len(keys))
	}
	for line := 2; ; line++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("peer table %s: %w", path, err)
		}
		i, ok := fnAt[rec[0]]
		if !ok {
			continue // a function not evaluated here
		}
		key, err := strconv.Atoi(rec[1])
		k, known := keyAt[key]
		if err != nil || !known {
			return nil, fmt.Errorf("peer table %s:%d: %s %q is not one evaluated", path, line, s.Key, rec[1])
		}
		if out[i][k] != nil {
			return nil, fmt.Errorf("peer table %s:%d: function %s %s %d given twice", path, line, rec[0], s.Key, key)
		}
		row := make([]float64, len(s.Values))
		for j := range row {
			v, err := strconv.ParseFloat(rec[2+j], 64)
			if err != nil || !s.Valid(v) {
				return nil, fmt.Errorf("peer table %s:%d: %s %q, want %s", path, line, s.Values[j], rec[2+j], s.Want)
			}
			row[j] = v
		}
		out[i][k] = row
	}
	for i, rows := range out {
		for k, row := range rows {
			if row == nil {
				return nil, fmt.Errorf("peer table %s: no row for function %s at %s %d", path, functions[i], s.Key, keys[k])
			}
		}
	}
	return out, nil
}
