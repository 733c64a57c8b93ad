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
//
// The hazard is also tabled by how far the gap has run past the longest
// gap the function closed before it (Past): a function called every
// minute that has been silent for 20 minutes has stopped far more surely
// than one whose calls came 15 minutes apart (on the training part's fit
// functions, 20-29 idle minutes at 10x its longest gap or more: 1.8% a
// minute; under 1.5x: 6.5%).
//
// Censoring keeps the fit from learning that a silence must end, but the
// days still hold only functions that were invoked: none of them stops for
// good, as many functions on a platform do. `mesp fit-silence` therefore
// fits on the population EVALUATION.md's platform mix describes, each day
// and one stopped copy of it (its last 6, 12 or 24 hours silent): a
// copy's silence adds decisions at risk and no event, and the hazard is
// the one a platform whose functions also stop sees (the shipped
// manifest's silence.past: 20-29 idle minutes at 10x the longest gap 1.1%
// a minute, under 1.5x 5.8%).
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
	// P is the hazard: Events / AtRisk (the share of decisions in an
	// unprecedented gap of this length whose next minute was invoked),
	// made non-increasing in the gap by pooling adjacent bins (Fit).
	P      float64 `json:"p"`
	AtRisk int     `json:"at_risk"`
	Events int     `json:"events"`
}

// Hazard is the fitted table: Bins over every decision, and Past, the
// same bins for each class of how far the gap has run past the
// function's longest closed gap (absent in tables fitted without them).
type Hazard struct {
	Bins []Bin      `json:"bins"`
	Past []PastBins `json:"past,omitempty"`
}

// PastBins is the hazard of the gaps that have run Ratio times the
// function's longest closed gap or more (idle / (longest + 1); a history
// with no closed gap is past every ratio), up to the next class's Ratio.
type PastBins struct {
	Ratio float64 `json:"ratio"`
	Bins  []Bin   `json:"bins"`
}

// PastRatios are the lower bounds of the Past classes.
var PastRatios = []float64{0, 1.5, 3, 10}

// MinAtRisk is the number of decisions a Past bin needs to answer: a
// thinner one answers with the pooled bin of its gap.
const MinAtRisk = 200

// Gap is the state of a history's silence: the idle minutes since its last
// invocation (the whole history when it has none), and whether that gap is
// longer than every gap the history closed before it.
func Gap(counts []float64) (idle int, unprecedented bool) {
	idle, longest := State(counts)
	return idle, idle > longest
}

// State is the idle minutes since the history's last invocation and the
// longest gap it closed before (-1: none).
func State(counts []float64) (idle, longest int) {
	last := -1
	longest = -1
	for i, v := range counts {
		if v > 0 {
			if last >= 0 {
				longest = max(longest, i-last-1)
			}
			last = i
		}
	}
	return len(counts) - 1 - last, longest
}

// pastClass is the index of h.Past holding a gap of idle minutes after a
// longest closed gap (-1: none), -1 when h has no Past classes.
func (h Hazard) pastClass(idle, longest int) int {
	if longest < 0 {
		return len(h.Past) - 1
	}
	r := float64(idle) / float64(longest+1)
	return sort.Search(len(h.Past), func(k int) bool { return h.Past[k].Ratio > r }) - 1
}

// Fit estimates the hazard from training days: every minute of a day after
// its first invocation whose idle gap is unprecedented is one decision at
// risk, an event when the minute is invoked.
func Fit(days [][]float64) Hazard {
	newBins := func() []Bin {
		bs := make([]Bin, len(Edges))
		for k, e := range Edges {
			bs[k].Gap = e
		}
		return bs
	}
	h := Hazard{Bins: newBins()}
	for _, r := range PastRatios {
		h.Past = append(h.Past, PastBins{Ratio: r, Bins: newBins()})
	}
	for _, d := range days {
		last, longest := -1, -1
		for i, v := range d {
			if last >= 0 {
				if g := i - last - 1; g >= Edges[0] && g > longest {
					for _, b := range []*Bin{&h.Bins[bin(g)], &h.Past[h.pastClass(g, longest)].Bins[bin(g)]} {
						b.AtRisk++
						if v > 0 {
							b.Events++
						}
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
	nonIncreasing(h.Bins)
	for _, p := range h.Past {
		nonIncreasing(p.Bins)
	}
	return h
}

// nonIncreasing sets each bin's P to the weighted least-squares fit of
// Events / AtRisk (weights AtRisk) that does not rise with the gap: pool
// adjacent violators. A silence's hazard is a mixture's, of functions
// that stopped and functions that paused; as the paused ones come back,
// those still silent are ever more the stopped, so the mixture's hazard
// falls with the gap. A rise in one bin is noise or a periodic function
// coming back, which the models (and the timers' floor) answer for that
// function. Unpooled, the table kept functions that had stopped for good
// warm 45-59 minutes after their last call (the training part's fit
// functions, gaps 10x past the function's longest: 1.58% a minute
// against 1.15% at 30-44). Bins no decision reached keep P 0 (AtPast
// never answers from them).
func nonIncreasing(bs []Bin) {
	type block struct {
		events, atRisk int
		bins           []int
	}
	var blocks []block
	for k, b := range bs {
		if b.AtRisk == 0 {
			continue
		}
		blocks = append(blocks, block{b.Events, b.AtRisk, []int{k}})
		for n := len(blocks); n > 1 && rate(blocks[n-2].events, blocks[n-2].atRisk) < rate(blocks[n-1].events, blocks[n-1].atRisk); n = len(blocks) {
			last := blocks[n-1]
			blocks = blocks[:n-1]
			prev := &blocks[n-2]
			prev.events, prev.atRisk, prev.bins = prev.events+last.events, prev.atRisk+last.atRisk, append(prev.bins, last.bins...)
		}
	}
	for _, bl := range blocks {
		for _, k := range bl.bins {
			bs[k].P = rate(bl.events, bl.atRisk)
		}
	}
}

func rate(events, atRisk int) float64 { return float64(events) / float64(atRisk) }

// bin is the index of the bin holding gap g >= Edges[0].
func bin(g int) int {
	return sort.Search(len(Edges), func(k int) bool { return Edges[k] > g }) - 1
}

// At is the hazard of an unprecedented gap of g idle minutes: its bin's,
// or the longest bin's beyond it (the data hold no gap of more than a day).
func (h Hazard) At(g int) float64 {
	return h.Bins[binOf(h.Bins, g)].P
}

// AtPast is the hazard of an unprecedented gap of g idle minutes after a
// longest closed gap of longest minutes (-1: none): its Past bin's when
// that bin holds MinAtRisk decisions, the pooled bin's otherwise (and in
// tables without Past).
func (h Hazard) AtPast(g, longest int) float64 {
	if c := h.pastClass(g, longest); c >= 0 {
		bs := h.Past[c].Bins
		if b := bs[binOf(bs, g)]; b.AtRisk >= MinAtRisk {
			return b.P
		}
	}
	return h.At(g)
}

// binOf is the index of the bin of bs holding gap g (the first below it).
func binOf(bs []Bin, g int) int {
	g = max(g, bs[0].Gap)
	return sort.Search(len(bs), func(k int) bool { return bs[k].Gap > g }) - 1
}

// Validate checks a table read from a manifest.
func (h Hazard) Validate() error {
	if err := validBins(h.Bins); err != nil {
		return err
	}
	for k, p := range h.Past {
		if k == 0 && p.Ratio != 0 || k > 0 && !(p.Ratio > h.Past[k-1].Ratio) {
			return fmt.Errorf("silence: past class %d from ratio %v, want increasing ratios from 0", k, p.Ratio)
		}
		if err := validBins(p.Bins); err != nil {
			return fmt.Errorf("past class %d (ratio %v): %w", k, p.Ratio, err)
		}
	}
	return nil
}

func validBins(bs []Bin) error {
	if len(bs) == 0 {
		return fmt.Errorf("silence: no hazard bins")
	}
	for k, b := range bs {
		if b.Gap < 1 || (k > 0 && b.Gap <= bs[k-1].Gap) {
			return fmt.Errorf("silence: bin %d starts at gap %d, want increasing gaps from 1", k, b.Gap)
		}
		if !(b.P >= 0 && b.P <= 1) {
			return fmt.Errorf("silence: bin %d (gap %d) hazard %v, want a probability", k, b.Gap, b.P)
		}
	}
	return nil
}
