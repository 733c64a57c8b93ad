package silence

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// A function that stopped and one that paused show the same history until
// the pause ends, and the p_invoke models, which learnt from days that were
// each invoked, answer both as a pause: on the platform mix of EVALUATION.md
// section 2 the silent copies were warm 2% of their minutes, most of them in
// the first two hours after their last call, where a threshold alone cannot
// tell them from an active function's pause (`mesp silence-frontier`). The
// stop model is a small tree ensemble fitted on that mix's decisions (each
// validation day and a stopped copy of it, as served): the chance of an
// invocation in the next minute given the served p_invoke and how the
// current silence compares with the function's own: its length, its ratio
// to the longest gap the function closed before, how many gaps at least as
// long it closed, how often it is invoked and for how long it has been.

// StopFeatures name the stop model's inputs, in order (StopInputs).
var StopFeatures = []string{"logit_p", "log_idle", "log_idle_over_longest", "log_gaps_as_long", "invoked_share", "log_since_first"}

// pClip keeps the logit of p_invoke finite.
const pClip = 1e-6

// logit is the stop model's first input for p_invoke p, clipped into
// [pClip, 1 - pClip].
func logit(p float64) float64 {
	p = min(max(p, pClip), 1-pClip)
	return math.Log(p / (1 - p))
}

// StopInputs are the stop model's inputs for a pattern (counts per minute,
// oldest first) whose next minute the models answer with p_invoke p:
// logit(p); log(1 + idle), the minutes since the last invocation (the whole
// pattern when it has none); that less log(2 + longest), the longest gap
// the pattern closed (-1: none); log(1 + gaps closed of at least max(idle,
// 1) minutes); the share of minutes invoked since the first invocation (0:
// none); log(1 + minutes since the first invocation) (the pattern's length
// when none).
func StopInputs(counts []float64, p float64) []float64 {
	n := len(counts)
	first, last, invoked := -1, -1, 0
	for i, v := range counts {
		if v > 0 {
			if first < 0 {
				first = i
			}
			last = i
			invoked++
		}
	}
	idle, since, share := n, n, 0.0
	if last >= 0 {
		idle, since = n-1-last, n-first
		share = float64(invoked) / float64(since)
	}
	longest, asLong := -1, 0
	prev := -1
	for i, v := range counts {
		if v <= 0 {
			continue
		}
		if prev >= 0 {
			g := i - prev - 1
			longest = max(longest, g)
			if g >= max(idle, 1) {
				asLong++
			}
		}
		prev = i
	}
	lIdle := math.Log1p(float64(idle))
	return []float64{logit(p), lIdle, lIdle - math.Log(float64(longest)+2), math.Log1p(float64(asLong)), share, math.Log1p(float64(since))}
}

// StopModel is the fitted ensemble (LightGBM's binary objective): the
// probability is the logistic of Init plus every tree's leaf.
type StopModel struct {
	Features []string   `json:"features"`
	Init     float64    `json:"init"`
	Trees    []StopTree `json:"trees"`
	FittedOn string     `json:"fitted_on,omitempty"`
}

// StopTree is one tree in LightGBM's layout: node i sends x to LeftChild[i]
// when x[SplitFeature[i]] <= Threshold[i], else to RightChild[i]; a child c
// < 0 is leaf -c-1. A tree of one leaf has no nodes.
type StopTree struct {
	SplitFeature []int     `json:"split_feature"`
	Threshold    []float64 `json:"threshold"`
	LeftChild    []int     `json:"left_child"`
	RightChild   []int     `json:"right_child"`
	LeafValue    []float64 `json:"leaf_value"`
}

// P is the probability of an invocation in the next minute for inputs x
// (StopInputs).
func (m StopModel) P(x []float64) float64 {
	s := m.Init
	for _, t := range m.Trees {
		s += t.leaf(x)
	}
	return 1 / (1 + math.Exp(-s))
}

func (t StopTree) leaf(x []float64) float64 {
	if len(t.SplitFeature) == 0 {
		return t.LeafValue[0]
	}
	i := 0
	for {
		c := t.RightChild[i]
		if x[t.SplitFeature[i]] <= t.Threshold[i] {
			c = t.LeftChild[i]
		}
		if c < 0 {
			return t.LeafValue[-c-1]
		}
		i = c
	}
}

// StopReferenceP is the p_invoke at which StillRuns reads the stop model:
// under it the model also recalibrates the models' tail, which says nothing
// of whether the function still runs (an exact timer between pulses,
// p_invoke 0.0008, was answered 0.69 times that).
const StopReferenceP = 0.01

// StillRuns is the chance that the function still runs by the stop model,
// for the minutes after the next one: what it makes of p_invoke
// max(p, StopReferenceP) with the same silence (inputs x, StopInputs),
// over that p_invoke, at most 1. On the validation functions' mix it is
// 0.996 for the median active decision and 0.074 for the median stopped
// one.
func (m StopModel) StillRuns(x []float64, p float64) float64 {
	ref := max(p, StopReferenceP)
	xr := slices.Clone(x)
	xr[0] = logit(ref)
	return min(1, m.P(xr)/ref)
}

// ErrStopModel is a stop model that cannot answer.
var ErrStopModel = errors.New("silence: stop model")

// Validate checks that every tree is a tree over the named inputs: its
// features known, its children in range and each node reached once (no
// cycle a walk could loop in), its values finite.
func (m StopModel) Validate() error {
	if !slices.Equal(m.Features, StopFeatures) {
		return fmt.Errorf("%w: features %v, want %v", ErrStopModel, m.Features, StopFeatures)
	}
	if len(m.Trees) == 0 || math.IsNaN(m.Init) || math.IsInf(m.Init, 0) {
		return fmt.Errorf("%w: %d trees, init %v", ErrStopModel, len(m.Trees), m.Init)
	}
	for k, t := range m.Trees {
		if err := t.validate(len(m.Features)); err != nil {
			return fmt.Errorf("%w: tree %d: %w", ErrStopModel, k, err)
		}
	}
	return nil
}

func (t StopTree) validate(features int) error {
	n := len(t.SplitFeature)
	if len(t.Threshold) != n || len(t.LeftChild) != n || len(t.RightChild) != n || len(t.LeafValue) != n+1 {
		return fmt.Errorf("%d nodes with %d thresholds, %d/%d children and %d leaves (want %d)",
			n, len(t.Threshold), len(t.LeftChild), len(t.RightChild), len(t.LeafValue), n+1)
	}
	for _, v := range append(slices.Clone(t.Threshold), t.LeafValue...) {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("value %v", v)
		}
	}
	nodes, leaves := make([]bool, n), make([]bool, n+1)
	if n > 0 {
		nodes[0] = true
	}
	for i := range n {
		if f := t.SplitFeature[i]; f < 0 || f >= features {
			return fmt.Errorf("node %d splits on input %d of %d", i, f, features)
		}
		for _, c := range []int{t.LeftChild[i], t.RightChild[i]} {
			switch {
			case c < 0 && -c-1 <= n && !leaves[-c-1]:
				leaves[-c-1] = true
			case c > i && c < n && !nodes[c]:
				nodes[c] = true
			default:
				return fmt.Errorf("node %d has child %d", i, c)
			}
		}
	}
	return nil
}

// StopDecision is one decision the stop model is fitted on: function
// Function's day (SilentHours 0) or its stopped copy, the next minute
// Minute (1-based), whether it was invoked, whether the timers' expert
// answered it, the served p_invoke and the StopInputs; the contract with
// training/ (`make train-stop`).
type StopDecision struct {
	Function           int32   `parquet:"function"`
	SilentHours        int32   `parquet:"silent_hours"`
	Minute             int32   `parquet:"minute"`
	Invoked            bool    `parquet:"invoked"`
	Timer              bool    `parquet:"timer"`
	PInvoke            float64 `parquet:"p_invoke"`
	LogitP             float64 `parquet:"logit_p"`
	LogIdle            float64 `parquet:"log_idle"`
	LogIdleOverLongest float64 `parquet:"log_idle_over_longest"`
	LogGapsAsLong      float64 `parquet:"log_gaps_as_long"`
	InvokedShare       float64 `parquet:"invoked_share"`
	LogSinceFirst      float64 `parquet:"log_since_first"`
}

// StopDecisions are the decisions of day (minutes 1..len(day)) for the
// minutes from start on, each made from the minutes before it with p[m -
// start] the served p_invoke of minute m; timer says which histories the
// timers' expert answers (Timer: the stop model neither fits nor answers
// them; nil: none).
func StopDecisions(function, silentHours int, day, p []float64, start int, timer func(history []float64) bool) []StopDecision {
	out := make([]StopDecision, 0, len(p))
	for k, pm := range p {
		m := start + k
		x := StopInputs(day[:m-1], pm)
		out = append(out, StopDecision{Function: int32(function), SilentHours: int32(silentHours), Minute: int32(m),
			Invoked: day[m-1] > 0, Timer: timer != nil && timer(day[:m-1]), PInvoke: pm, LogitP: x[0], LogIdle: x[1],
			LogIdleOverLongest: x[2], LogGapsAsLong: x[3], InvokedShare: x[4], LogSinceFirst: x[5]})
	}
	return out
}
