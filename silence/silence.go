// Package silence answers how likely a function is to wake after a silence
// longer than any its history shows: the hazard of an unprecedented idle
// gap, fitted on training days, by the gap's length.
//
// The p_invoke models learnt from days that were each invoked at least
// once, so a day silent since midnight must, for them, wake before
// midnight; an all-zero pattern (the most common pattern on a platform) is
// out of their distribution and gets probabilities up to 0.11. The fit here
// cannot learn that rule: a decision counts only once its day has been
// invoked (the silence before a day's first invocation is how the data was
// chosen, not how functions behave), and a gap still open at the end of a
// day is censored there, never forced to close.
package silence

import (
	"fmt"
	"sort"
)

// Edges are the lower bounds, in idle minutes, of the hazard's gap bins:
// fine where gaps are common, wider as they grow.
var Edges = []int{1, 2, 3, 4, 5, 7, 10, 15, 20, 30, 45, 60, 90, 120, 180, 240, 360, 540, 720, 1080}

// Bin is the hazard of gaps from Gap idle minutes up to the next bin's.
type Bin struct {
	Gap int `json:"gap"`
	// P is Events / AtRisk: the share of decisions in an unprecedented gap
	// of this length whose next minute was invoked.
	P      float64 `json:"p"`
	AtRisk int     `json:"at_risk"`
	Events int     `json:"events"`
}

// Hazard is the fitted table.
type Hazard struct {
	Bins []Bin `json:"bins"`
}

// Gap is the state of a history's silence: the idle minutes since its last
// invocation (the whole history when it has none), and whether that gap is
// longer than every gap the history closed before it.
func Gap(counts []float64) (idle int, unprecedented bool) {
	last, longest := -1, -1
	for i, v := range counts {
		if v > 0 {
			if last >= 0 {
				longest = max(longest, i-last-1)
			}
			last = i
		}
	}
	idle = len(counts) - 1 - last
	return idle, idle > longest
}

// Fit estimates the hazard from training days: every minute of a day after
// its first invocation whose idle gap is unprecedented is one decision at
// risk, an event when the minute is invoked.
func Fit(days [][]float64) Hazard {
	h := Hazard{Bins: make([]Bin, len(Edges))}
	for k, e := range Edges {
		h.Bins[k].Gap = e
	}
	for _, d := range days {
		last, longest := -1, -1
		for i, v := range d {
			if last >= 0 {
				if g := i - last - 1; g >= Edges[0] && g > longest {
					b := &h.Bins[bin(g)]
					b.AtRisk++
					if v > 0 {
						b.Events++
					}
				}
			}
			if v > 0 {
				if last >= 0 {
					longest = max(longest, i-last-1)
				}
				last = i
			}
		}
	}
	for k := range h.Bins {
		if b := &h.Bins[k]; b.AtRisk > 0 {
			b.P = float64(b.Events) / float64(b.AtRisk)
		}
	}
	return h
}

// bin is the index of the bin holding gap g >= Edges[0].
func bin(g int) int {
	return sort.Search(len(Edges), func(k int) bool { return Edges[k] > g }) - 1
}

// At is the hazard of an unprecedented gap of g idle minutes: its bin's,
// or the longest bin's beyond it (the data hold no gap of more than a day).
func (h Hazard) At(g int) float64 {
	g = max(g, h.Bins[0].Gap)
	k := sort.Search(len(h.Bins), func(k int) bool { return h.Bins[k].Gap > g }) - 1
	return h.Bins[k].P
}

// Validate checks a table read from a manifest.
func (h Hazard) Validate() error {
	if len(h.Bins) == 0 {
		return fmt.Errorf("silence: no hazard bins")
	}
	for k, b := range h.Bins {
		if b.Gap < 1 || (k > 0 && b.Gap <= h.Bins[k-1].Gap) {
			return fmt.Errorf("silence: bin %d starts at gap %d, want increasing gaps from 1", k, b.Gap)
		}
		if !(b.P >= 0 && b.P <= 1) {
			return fmt.Errorf("silence: bin %d (gap %d) hazard %v, want a probability", k, b.Gap, b.P)
		}
	}
	return nil
}
