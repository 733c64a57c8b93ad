package trace

import (
	"fmt"
	"slices"
)

// ReadDays (test-only) joins daily files (in the given order, e.g.
// d01..d14) into one multi-day series per function. A function missing from a day gets zeros
// for that day, as in the Azure trace, where a function not invoked on a day
// has no row.
func ReadDays(paths []string, opts Options) ([]Function, error) {
	byID := map[string]*Function{}
	var order []string
	total := len(paths) * MinutesPerDay
	for d, p := range paths {
		_, err := Each(p, opts, func(f Function) error {
			if len(f.Counts) != MinutesPerDay {
				return fmt.Errorf("trace: %s:%d: %d minutes, want %d", p, f.Line, len(f.Counts), MinutesPerDay)
			}
			cur, ok := byID[f.ID]
			if !ok {
				cur = &Function{Owner: f.Owner, App: f.App, ID: f.ID, Trigger: f.Trigger, Counts: make([]float64, total)}
				byID[f.ID] = cur
				order = append(order, f.ID)
			}
			copy(cur.Counts[d*MinutesPerDay:], f.Counts)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	slices.Sort(order)
	out := make([]Function, 0, len(order))
	for _, id := range order {
		out = append(out, *byID[id])
	}
	return out, nil
}
