package forecast

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/mesp-project/mesp/manifest"
	"github.com/mesp-project/mesp/onnx"
	"github.com/mesp-project/mesp/periodic"
	"github.com/mesp-project/mesp/router"
	"github.com/mesp-project/mesp/silence"
	"github.com/mesp-project/mesp/steady"
	"github.com/mesp-project/mesp/trace"
)

// Request is one function's recent per-minute counts, oldest first; the
// last value is the most recent full minute.
type Request struct {
	ID     string
	Counts []float64
}

// Result is one function's forecast.
type Result struct {
	ID       string
	Cluster  int
	Distance float64
	OOD      bool
	// Model is the id of the model that answered, Kind "expert" or "dense".
	// Forecast and PInvoke stay float32, as the models answer, up to the
	// JSON.
	Model, Kind, Family string
	// Forecast is the count forecast: the expected count, not rounded, so
	// that an hour of it sums to the hour's volume. Level, blended with the
	// mean trees where the set has them ((1 - Mean.Weight) times Level plus
	// Mean.Weight times theirs), raised by a share of the served upper
	// quantile's distance above Level where the set says so (Upper); with
	// neither, it is Median. A timer's (Timer set) is its expected count in
	// phase; a sparse function's (Sparse) p_invoke times its size.
	Forecast []float32
	// Median is each minute's median in whole invocations: Level rounded.
	// The count models are fitted to absolute error, whose best point
	// forecast of a count is a whole number, and rounding is what buys it
	// (docs/research.md); the minute-level WAPE is scored on it.
	Median []float32
	// Level is the count models' answer before rounding, blended as Blend
	// and Trees say (the hourly policy of before thresholds it below one).
	Level []float32
	// Mean is the mean trees' part of Forecast (manifest.Mean); nil: none.
	Mean *TreesBlend
	// PInvoke is the probability of an invocation in each of the next 60
	// minutes (with Outputs PInvoke), answered by PModel of kind PKind.
	PInvoke       []float32
	PModel, PKind string
	// Blend is the runner-up cluster's count model blended into Forecast
	// by soft routing (manifest.Routing); nil: the one model's forecast.
	Blend *Blend
	// Trees is the count trees' part of Forecast (manifest.Trees); nil:
	// none blended (the set has none, or the pattern is shorter than
	// their window).
	Trees *TreesBlend
	// Silence is the idle gap, in minutes, whose hazard capped PInvoke
	// (manifest.Silence); 0: the p_invoke models answered alone.
	Silence int
	// Stop says the stop model answered the next minute's p_invoke
	// (manifest.Stop); nil: not.
	Stop *StopAnswer
	// Timer is the period the timers' expert answered the counts in phase
	// with (periodic.Detect); nil: the count models answered.
	Timer *periodic.Timer
	// Upper says Forecast is raised by a share of the served upper
	// quantile's distance above the level (manifest.Expected); nil: not.
	Upper *UpperShare
	// Sparse says Forecast is p_invoke times the size of an invocation
	// (manifest.Sparse); nil: the count models' expected count.
	Sparse *SparseMean
	// Quantiles is each served quantile's counts (with Outputs
	// Quantiles), in increasing order of Q, none under the median or a
	// lower quantile.
	Quantiles []QuantileCounts

	// idle and longest are the pattern's silence (silence.State), read
	// once: the p_invoke cap, the mean and quantile trees and the sparse
	// rule all ask.
	idle, longest int
}

// withSilence sets every result's silence from its request's pattern.
func withSilence(reqs []Request, out []Result) {
	for i := range out {
		out[i].idle, out[i].longest = silence.State(reqs[i].Counts)
	}
}

// UpperShare is how an expected count was derived from a served quantile
// (manifest.Expected).
type UpperShare struct {
	Quantile, Share float64
}

// QuantileCounts is one quantile of each minute's count.
type QuantileCounts struct {
	Q      float64
	Counts []float32
}

// Median is the quantile level of Result.Median.
const Median = 0.5

// QuantileSeries is every quantile r answers, in increasing order: the
// median first, then Quantiles.
func (r Result) QuantileSeries() []QuantileCounts {
	return append([]QuantileCounts{{Q: Median, Counts: r.Median}}, r.Quantiles...)
}

// QuantileAt is quantile q's counts among qs (in increasing order of
// level): the level's own where qs holds it, else each minute interpolated
// linearly in the level between the two levels of qs around q, so that a
// platform can size capacity between the levels the models serve (the
// levels never cross, so neither do the interpolated ones); ok is false
// when q is outside qs' levels.
func QuantileAt(qs []QuantileCounts, q float64) (counts []float32, ok bool) {
	for k, c := range qs {
		switch {
		case c.Q == q:
			return c.Counts, true
		case c.Q > q:
			if k == 0 {
				return nil, false
			}
			lo := qs[k-1]
			w := float32((q - lo.Q) / (c.Q - lo.Q))
			counts = make([]float32, min(len(lo.Counts), len(c.Counts)))
			for h := range counts {
				counts[h] = lo.Counts[h] + w*(c.Counts[h]-lo.Counts[h])
			}
			return counts, true
		}
	}
	return nil, false
}

// levelsUpTo is how many of levels (increasing) a caller that wants
// quantile upTo needs: those up to the first at or above it, which
// QuantileAt interpolates from; none for the median or below.
func levelsUpTo(levels []manifest.Quantile, upTo float64) int {
	if upTo <= Median {
		return 0
	}
	n := 0
	for n < len(levels) && (n == 0 || levels[n-1].Q < upTo) {
		n++
	}
	return n
}

// SparseMean is how a sparse function's expected count was answered:
// each minute's p_invoke times SizeWhenInvoked, the mean count of its
// recent invoked minutes; or, where Steady is set, that steady rate.
type SparseMean struct {
	SizeWhenInvoked float64
	Steady          *steady.Rate
}

// TreesBlend is the count trees' part of a forecast: Forecast is (1 -
// Weight) times the routed forecast (soft routing included) plus Weight
// times the trees'.
type TreesBlend struct {
	Model  string
	Weight float64
}

// Blend is the second count model of a soft-routed forecast: Forecast is
// (1 - Weight) times the nearest cluster's model plus Weight times this.
type Blend struct {
	Cluster  int
	Distance float64
	Model    string
	Kind     string
	Weight   float64
}

// Outputs chooses what a call computes.
type Outputs uint8

const (
	// Counts is the 60 expected counts.
	Counts Outputs = 1 << iota
	// PInvoke is the 60 invocation probabilities.
	PInvoke
	// Quantiles is each served quantile's 60 counts (manifest.Quantiles),
	// beside the counts (it implies Counts: the median is their floor).
	Quantiles
)

// ErrNoPInvoke marks a model set without p_invoke models.
var ErrNoPInvoke = errors.New("the models in service have no p_invoke models (train them: make train-experts)")

// ErrInvalid marks a request that can never succeed (a 4xx).
var ErrInvalid = errors.New("invalid request")

// Mode chooses how a request is answered.
type Mode int

const (
	// Routed is MESP as served: router, then the cluster's expert or dense.
	Routed Mode = iota
	// DenseOnly skips the experts (the evaluation's dense baseline).
	DenseOnly
)

// Validate checks one request against the set in service.
func (s *Set) Validate(r Request) error {
	if len(r.Counts) < s.MaxInputLen || len(r.Counts) > s.Router.Length() {
		return fmt.Errorf("%w: function %q: %d counts, want %d..%d per-minute counts", ErrInvalid, r.ID, len(r.Counts), s.MaxInputLen, s.Router.Length())
	}
	return checkCounts(r)
}

// checkCounts refuses what trace.CheckCount refuses: NaN, infinite and
// negative counts, and counts beyond trace.MaxCount (the models' float32
// arithmetic would answer NaN).
func checkCounts(r Request) error {
	for i, v := range r.Counts {
		if err := trace.CheckCount(v); err != nil {
			return fmt.Errorf("%w: function %q: count %d: %v", ErrInvalid, r.ID, i, err)
		}
	}
	return nil
}

// appendPInvokeInput appends a p_invoke model's input row: the counts as
// float32, left-padded with manifest.Missing to inputLen minutes.
func appendPInvokeInput(in []float32, counts []float64, inputLen int) []float32 {
	if len(counts) > inputLen {
		counts = counts[len(counts)-inputLen:]
	}
	for range inputLen - len(counts) {
		in = append(in, manifest.Missing)
	}
	for _, v := range counts {
		in = append(in, float32(v))
	}
	return in
}

// appendInput appends a model's input row, the last inputLen counts as
// float32, to in.
func appendInput(in []float32, counts []float64, inputLen int) []float32 {
	for _, v := range counts[len(counts)-inputLen:] {
		in = append(in, float32(v))
	}
	return in
}

// rows splits a model's flat [n, width] output into n rows that share its
// backing array (capped, so no row can grow into the next).
func rows(y []float32, width int) [][]float32 {
	out := make([][]float32, len(y)/width)
	for r := range out {
		out[r] = y[r*width : (r+1)*width : (r+1)*width]
	}
	return out
}

// Forecast answers a batch: every request is validated first (one bad
// request fails the batch, nothing half-done), then routed, then each
// model runs once over all rows routed to it.
func (f *Forecaster) Forecast(ctx context.Context, reqs []Request, mode Mode) ([]Result, error) {
	s, release, err := f.Acquire()
	if err != nil {
		return nil, err
	}
	defer release()
	return s.forecast(ctx, reqs, mode, Counts, f.OnRoute, 1)
}

// Predict is Forecast with a choice of outputs: counts, p_invoke or both
// (the pre-warm decision). Both are routed by one routing decision.
func (f *Forecaster) Predict(ctx context.Context, reqs []Request, mode Mode, outs Outputs) ([]Result, error) {
	s, release, err := f.Acquire()
	if err != nil {
		return nil, err
	}
	defer release()
	return s.forecast(ctx, reqs, mode, outs, f.OnRoute, 1)
}

// PredictUpTo is Predict answering only the quantile levels up to the
// first at or above upTo (with Outputs Quantiles), the ones QuantileAt
// reads for upTo: the quantile graphs no such level uses do not run. The
// levels answered are what Predict answers for them (each level reads
// only the levels below it).
func (f *Forecaster) PredictUpTo(ctx context.Context, reqs []Request, mode Mode, outs Outputs, upTo float64) ([]Result, error) {
	s, release, err := f.Acquire()
	if err != nil {
		return nil, err
	}
	defer release()
	return s.forecast(ctx, reqs, mode, outs, f.OnRoute, upTo)
}

func (s *Set) forecast(ctx context.Context, reqs []Request, mode Mode, outs Outputs, onRoute RouteHook, upTo float64) ([]Result, error) {
	if outs&PInvoke != 0 && s.PDense == nil {
		return nil, ErrNoPInvoke
	}
	if outs&Quantiles != 0 {
		outs |= Counts
	}
	routes, per, groups, err := s.plan(ctx, reqs, mode)
	if err != nil {
		return nil, err
	}
	out := make([]Result, len(reqs))
	for i, r := range reqs {
		rt, m, kind := routes[i], per[i].model, per[i].kind
		if onRoute != nil {
			onRoute(ctx, r.ID, r.Counts, rt, kind)
		}
		out[i] = Result{ID: r.ID, Cluster: rt.Cluster, Distance: rt.Distance, OOD: rt.OOD, Model: m.ID, Kind: kind, Family: m.Family}
	}
	withSilence(reqs, out)
	s.markTimers(reqs, mode, out)
	// The dense p_invoke graph runs once per request that needs it, beside
	// the count models that do not: its features feed the count trees that
	// read them, and its answers the p_invoke of the rows it serves and of
	// the experts that continue it. Counts and p_invoke come from different
	// models: when both are asked for, they run at once, so that a
	// pre-warm answer takes about as long as the slower of the two rather
	// than their sum.
	dense := newDenseRun(len(reqs))
	var pper []served
	var pgroups []modelGroup
	var denseRows []int
	if outs&Counts != 0 {
		denseRows = s.featureRows(reqs, mode, out)
	}
	if outs&PInvoke != 0 {
		pper, pgroups = s.assignP(routes, mode)
		denseRows = append(denseRows, s.denseRows(pper)...)
	}
	denseReady := make(chan struct{})
	var denseErr error
	runDense := func() {
		defer close(denseReady)
		denseErr = s.runDense(ctx, reqs, dense, denseRows)
	}
	if inline(ctx) {
		runDense()
	} else {
		go runDense()
	}
	var countsErr error
	var means [][]float32       // the mean trees' answer per request (nil: none)
	var quantiles [][][]float32 // per quantile, each request's trees' answer (nil: none)
	var counting sync.WaitGroup
	if outs&Counts != 0 {
		counting.Add(1)
		run := func() {
			defer counting.Done()
			buf := inputPool.Get().(*[]float32)
			defer inputPool.Put(buf)
			input := func(in []float32, i int, m *onnx.Model) []float32 {
				return appendInput(in, reqs[i].Counts, m.InputLen)
			}
			countsErr = s.runGroups(ctx, withoutTimers(groups, out), buf, input, nil, func(i int, y []float32) { out[i].Forecast = y })
			if bgroups := s.blends(routes, per, mode, out); countsErr == nil && len(bgroups) > 0 {
				countsErr = s.runGroups(ctx, bgroups, buf, input, nil, func(i int, y []float32) {
					mix(out[i].Forecast, y, out[i].Blend.Weight)
				})
			}
			if <-denseReady; countsErr == nil {
				countsErr = denseErr // the trees read its features
			}
			if tg := s.treeRows(s.Trees, reqs, mode, out); countsErr == nil && tg != nil {
				tb := &TreesBlend{Model: tg[0].model.ID, Weight: s.Manifest.Trees.Weight}
				countsErr = s.runGroups(ctx, tg, buf, input, dense.second, func(i int, y []float32) {
					mix(out[i].Forecast, y, tb.Weight)
					out[i].Trees = tb
				})
			}
			if mg := s.meanRows(reqs, mode, out); countsErr == nil && mg != nil {
				mb := &TreesBlend{Model: mg[0].model.ID, Weight: s.Manifest.Mean.Weight}
				means = make([][]float32, len(out))
				countsErr = s.runGroups(ctx, mg, buf, input, dense.second, func(i int, y []float32) {
					means[i] = slices.Clone(y)
					out[i].Mean = mb
				})
			}
			if outs&Quantiles != 0 || s.Manifest.Expected != nil {
				// one run per graph, whatever the levels it serves
				quantiles = make([][][]float32, len(s.Quantiles))
				for k, m := range s.Quantiles[:levelsUpTo(s.Manifest.Quantiles, s.graphsUpTo(outs, upTo))] {
					if j := slices.Index(s.Quantiles, m); j < k {
						quantiles[k] = quantiles[j]
						continue
					}
					qg := s.quantileRows(m, reqs, mode, outs, out)
					if countsErr != nil || qg == nil {
						continue
					}
					quantiles[k] = make([][]float32, len(out))
					countsErr = s.runGroups(ctx, qg, buf, input, dense.second, func(i int, y []float32) {
						quantiles[k][i] = slices.Clone(y)
					})
				}
			}
		}
		if outs&PInvoke != 0 && !inline(ctx) {
			go run()
		} else {
			run()
		}
	}
	<-denseReady
	if denseErr != nil {
		counting.Wait()
		return nil, denseErr
	}
	if outs&PInvoke != 0 {
		if err := s.runPInvoke(ctx, reqs, pper, pgroups, dense, out); err != nil {
			counting.Wait()
			return nil, err
		}
		s.finishPInvoke(reqs, mode, out)
	}
	counting.Wait()
	if countsErr != nil {
		return nil, countsErr
	}
	if outs&Counts != 0 {
		for i := range out {
			r := &out[i]
			switch {
			case r.Timer != nil:
				answerTimer(reqs[i].Counts, r)
			case r.Mean != nil:
				r.Level, r.Median = r.Forecast, WholeInvocations(r.Forecast)
				r.Forecast = slices.Clone(r.Level)
				if s.Manifest.Mean.Hour {
					shapeHour(r.Level, means[i])
				}
				mix(r.Forecast, means[i], r.Mean.Weight)
			default:
				r.Level, r.Forecast = r.Forecast, WholeInvocations(r.Forecast)
				r.Median = r.Forecast
			}
			if outs&Quantiles != 0 {
				s.answerQuantiles(reqs[i].Counts, r, quantiles, i, upTo)
			}
			s.addUpperShare(reqs[i], r, quantiles, i)
		}
		if err := s.sparseMeans(ctx, reqs, routes, mode, outs, dense, out); err != nil {
			return nil, err
		}
	}
	if outs&PInvoke != 0 && mode == Routed && s.Manifest.Stop != nil {
		for i := range out {
			if out[i].Timer == nil { // a timer's minutes are its floor's and cap's
				stopped(s.Manifest.Stop, reqs[i].Counts, &out[i])
			}
		}
	}
	return out, nil
}

// stopped answers r's next minute with the stop model (manifest.Stop) and
// scales every later minute by the chance it gives that the function
// still runs (silence.StopModel.StillRuns). It comes after the sparse
// rule, which reads p_invoke for the expected count of an active
// function: the counts stay the active functions' expectation, and only
// the pre-warm decision weighs a stop. A timer's minutes are left to its
// floor and cap (floorTimer): a model of pauses has nothing to add while
// the timer keeps its phases, and once it misses them the silence cap
// applies.
func stopped(m *silence.StopModel, counts []float64, r *Result) {
	if len(r.PInvoke) == 0 {
		return
	}
	p := float64(r.PInvoke[0])
	x := silence.StopInputs(counts, p)
	r.Stop = &StopAnswer{PInvokeBefore: float32(p)}
	r.PInvoke[0] = float32(m.P(x))
	if f := float32(m.StillRuns(x, p)); f < 1 {
		for h := 1; h < len(r.PInvoke); h++ {
			r.PInvoke[h] *= f
		}
	}
}

// StopAnswer is what the stop model changed: the next minute's p_invoke
// before it.
type StopAnswer struct {
	PInvokeBefore float32
}

// graphsUpTo is the quantile level up to which the quantile graphs run:
// upTo where quantiles are asked for, and the expected count's quantile
// (manifest.Expected) where counts are.
func (s *Set) graphsUpTo(outs Outputs, upTo float64) float64 {
	if outs&Quantiles == 0 {
		upTo = 0
	}
	if e := s.Manifest.Expected; e != nil {
		upTo = max(upTo, e.Quantile)
	}
	return upTo
}

// quantileRows is quantile graph m's run: treeRows, less the patterns in
// a silence longer than any they show (meanRows says why). Where no
// quantile is asked for (outs), the graph runs for the expected count
// alone, and the rows the sparse rule answers are left out too: their
// expected count is the rule's, whatever the graph would say.
func (s *Set) quantileRows(m *onnx.Model, reqs []Request, mode Mode, outs Outputs, out []Result) []modelGroup {
	groups := s.silentLess(s.treeRows(m, reqs, mode, out), out)
	if outs&Quantiles != 0 || s.Manifest.Sparse == nil {
		return groups
	}
	return rowsLess(groups, func(i int) bool { return s.sparseAnswers(reqs[i], &out[i]) })
}

// sparseAnswers says whether the sparse rule (manifest.Sparse) answers
// r's expected count: no timer's, no silence longer than the pattern
// shows, and the rule's own conditions (a routed pattern: callers check).
func (s *Set) sparseAnswers(r Request, res *Result) bool {
	sp := s.Manifest.Sparse
	return sp != nil && res.Timer == nil && !s.inSilence(res) && sp.Answers(r.Counts)
}

// addUpperShare makes r's Forecast the expected count manifest.Expected
// derives, where the quantile trees answered r's pattern (no timer's, no
// silence longer than the pattern shows, a pattern as long as their
// window) and the sparse rule does not answer it: the level (or the mean
// trees' blend, before rounding) plus the share of how far the served
// quantile lies above the level.
func (s *Set) addUpperShare(req Request, r *Result, trees [][][]float32, i int) {
	e := s.Manifest.Expected
	if e == nil {
		return
	}
	k := s.Manifest.Level(e.Quantile)
	if k < 0 || k >= len(trees) || trees[k] == nil || trees[k][i] == nil || s.sparseAnswers(req, r) {
		return
	}
	qs := r.Quantiles // the answer's own, where it asks for that level
	if len(qs) <= k {
		at := *r
		s.answerQuantiles(req.Counts, &at, trees, i, e.Quantile)
		qs = at.Quantiles
	}
	upper := qs[k].Counts
	if r.Mean == nil {
		r.Forecast = slices.Clone(r.Level)
	}
	for h, v := range upper {
		r.Forecast[h] += float32(e.Share * float64(max(v-r.Level[h], 0)))
	}
	r.Upper = &UpperShare{Quantile: e.Quantile, Share: e.Share}
}

// answerQuantiles sets r.Quantiles: each served level is the largest of
// the level below it (the median first) and its scale times the largest
// of the median and its graph's answer (the timers' expert's in phase for
// a timer), so that none ever crosses. A pattern the graph does not
// answer (shorter than its window, or in a silence no day shows) has the
// median for the graph's answer.
func (s *Set) answerQuantiles(counts []float64, r *Result, trees [][][]float32, i int, upTo float64) {
	n := levelsUpTo(s.Manifest.Quantiles, upTo)
	r.Quantiles = make([]QuantileCounts, n)
	lower := r.Median
	for k, q := range s.Manifest.Quantiles[:n] {
		base := r.Median
		switch {
		case r.Timer != nil:
			base = make([]float32, len(lower))
			for h, v := range r.Timer.Quantile(counts, len(lower), q.FittedAt()) {
				base[h] = float32(v)
			}
		case trees[k] != nil && trees[k][i] != nil:
			base = trees[k][i]
		}
		c, scale := make([]float32, len(lower)), float32(q.Scales())
		for h := range c {
			c[h] = max(lower[h], scale*max(base[h], r.Median[h]))
		}
		r.Quantiles[k] = QuantileCounts{Q: q.Q, Counts: c}
		lower = c
	}
}

// pInvokes answers p_invoke for reqs, routed as routes say: the served
// p_invoke model of each row, the timers' floor, and the silence cap.
func (s *Set) pInvokes(ctx context.Context, reqs []Request, routes []router.Route, mode Mode, dense *denseRun, out []Result) error {
	pper, pgroups := s.assignP(routes, mode)
	if err := s.runPInvoke(ctx, reqs, pper, pgroups, dense, out); err != nil {
		return err
	}
	s.finishPInvoke(reqs, mode, out)
	return nil
}

// assignP picks every routed request's p_invoke model and groups the
// requests by it.
func (s *Set) assignP(routes []router.Route, mode Mode) ([]served, []modelGroup) {
	return s.assignBy(routes, func(rt router.Route) (*onnx.Model, string) {
		if mode == DenseOnly {
			return s.PDense, "dense"
		}
		return s.ServedPInvoke(rt)
	})
}

// finishPInvoke applies the rules on the models' p_invoke: the timers'
// floor and the silence cap.
func (s *Set) finishPInvoke(reqs []Request, mode Mode, out []Result) {
	for i := range out {
		if out[i].Timer != nil {
			floorTimer(reqs[i].Counts, &out[i])
		}
	}
	if sl := s.Manifest.Silence; sl != nil && mode == Routed {
		for i := range out {
			out[i].Silence = capSilence(sl, &out[i])
		}
	}
}

// sparseMeans sets the expected count of every routed pattern that
// manifest.Sparse answers (not the timers': their expert answers in
// phase; nor one in a silence no day shows: inSilence) to p_invoke
// times the mean count of its recent invoked minutes, or, for a steady
// pattern where the set says so, to its steady rate. A call that did not
// ask for p_invoke computes it for the other rows alone, on the routes
// the call already has.
func (s *Set) sparseMeans(ctx context.Context, reqs []Request, routes []router.Route, mode Mode, outs Outputs, dense *denseRun, out []Result) error {
	sp := s.Manifest.Sparse
	if sp == nil || mode != Routed {
		return nil
	}
	var rows []int
	for i := range out {
		if !s.sparseAnswers(reqs[i], &out[i]) {
			continue
		}
		size, _ := sp.MeanWhenInvoked(reqs[i].Counts)
		out[i].Sparse = &SparseMean{SizeWhenInvoked: size}
		if sp.Steady {
			if rate, ok := steady.Detect(reqs[i].Counts); ok {
				r := &out[i]
				r.Sparse.Steady = &rate
				r.Forecast = make([]float32, len(r.Forecast)) // the median may share the old one
				for h := range r.Forecast {
					r.Forecast[h] = float32(rate.PerMinute)
				}
				continue
			}
		}
		rows = append(rows, i)
	}
	if len(rows) == 0 {
		return nil
	}
	p := func(k int) []float32 { return out[rows[k]].PInvoke }
	if outs&PInvoke == 0 {
		sub, subRoutes, subOut := make([]Request, len(rows)), make([]router.Route, len(rows)), make([]Result, len(rows))
		for k, i := range rows {
			sub[k], subRoutes[k] = reqs[i], routes[i]
			subOut[k].idle, subOut[k].longest = out[i].idle, out[i].longest
		}
		if err := s.pInvokes(ctx, sub, subRoutes, Routed, dense.rows(rows), subOut); err != nil {
			return err
		}
		p = func(k int) []float32 { return subOut[k].PInvoke }
	}
	for k, i := range rows {
		r := &out[i]
		size := float32(r.Sparse.SizeWhenInvoked)
		r.Forecast = make([]float32, len(r.Forecast)) // the median may share the old one
		for h, v := range p(k) {
			r.Forecast[h] = v * size
		}
	}
	return nil
}

// floorTimer holds a timer's p_invoke to its phases: at least the share
// of its last cycles invoked in each minute ahead (periodic.Timer.Forecast),
// and at most the rate its history supports at minutes off every phase
// they were invoked at (periodic.Timer.OffPhaseCap). The p_invoke models
// see no period: a pulse 11 minutes ahead of a 7-minute timer got 0.01,
// under the default threshold, and an exact 45-minute timer had 29 of the
// next 60 minutes warm for its 2 pulses. The cap of a silence longer than
// the timer ever showed still applies after it, so a timer that stopped
// goes cold as any function does.
func floorTimer(counts []float64, r *Result) {
	_, p := r.Timer.Forecast(counts, len(r.PInvoke))
	ceiling := r.Timer.OffPhaseCap(counts, len(r.PInvoke))
	for h, v := range p {
		r.PInvoke[h] = min(max(r.PInvoke[h], float32(v)), float32(ceiling[h]))
	}
}

// capSilence caps p_invoke after a silence longer than any the pattern
// shows, from the set's CapsFrom gap on, at the hazard the training data
// support for the gap each minute ahead reaches, that far past the
// pattern's longest gap; it returns the gap (0: no cap).
func capSilence(sl *manifest.Silence, r *Result) int {
	if !r.silentPast(sl.CapsFrom()) {
		return 0
	}
	for h := range r.PInvoke {
		r.PInvoke[h] = min(r.PInvoke[h], float32(sl.AtPast(r.idle+h, r.longest)))
	}
	return r.idle
}

// markTimers sets Timer on every routed request whose pattern the timers'
// expert answers (periodic.Detect), unless the set serves without it: the
// count models then leave those rows out (withoutTimers, blends, trees)
// and its p_invoke has the timer's floor (floorTimer).
func (s *Set) markTimers(reqs []Request, mode Mode, out []Result) {
	if mode != Routed || s.skipTimers {
		return
	}
	for i, r := range reqs {
		if t, ok := periodic.Detect(r.Counts); ok {
			out[i].Timer = &t
		}
	}
}

// withoutTimers is groups without the rows the timers' expert answers.
func withoutTimers(groups []modelGroup, out []Result) []modelGroup {
	var kept []modelGroup
	for _, g := range groups {
		rows := slices.DeleteFunc(slices.Clone(g.rows), func(i int) bool { return out[i].Timer != nil })
		if len(rows) > 0 {
			kept = append(kept, modelGroup{model: g.model, rows: rows})
		}
	}
	return kept
}

// answerTimer sets a timer's counts (Forecast and Level) from the timers'
// expert: the mean of each phase minute over the last cycles, in place of
// the count models' blend, which no pulse is smeared into. It is the
// expected count, not rounded: a jittered pulse of one invocation is a
// third on each of its minutes, and the hour adds up.
func answerTimer(counts []float64, r *Result) {
	mean, _ := r.Timer.Forecast(counts, manifest.Horizon)
	r.Forecast, r.Level = make([]float32, len(mean)), make([]float32, len(mean))
	for h, v := range mean {
		r.Forecast[h], r.Level[h] = float32(v), float32(v)
	}
	r.Median = WholeInvocations(r.Level)
}

// shapeHour spreads the hour's volume that hour answers as even shares
// over the hour as level shapes it: level times the volume over level's
// sum, or the even shares where level holds less than half an invocation
// (Python's count_trees.shaped is the same rule).
func shapeHour(level, hour []float32) {
	var total, volume float64
	for h := range hour {
		total += float64(level[h])
		volume += float64(hour[h])
	}
	if total <= 0.5 {
		return
	}
	for h := range hour {
		hour[h] = float32(float64(level[h]) * volume / total)
	}
}

// WholeInvocations rounds a count forecast to the nearest whole number of
// invocations (halves up, never below zero), in a new slice; Python's
// contract.whole_invocations is the same rule.
func WholeInvocations(level []float32) []float32 {
	out := make([]float32, len(level))
	for h, v := range level {
		out[h] = float32(math.Max(0, math.Floor(float64(v)+0.5)))
	}
	return out
}

// mix sets f to (1 - w) f + w y, in float64.
func mix(f, y []float32, w float64) {
	for h, v := range y {
		f[h] = float32((1-w)*float64(f[h]) + w*float64(v))
	}
}

// treeRows is a run of trees m (the count trees or the mean trees) over
// every request of a routed batch whose pattern holds their window and is
// no timer's (nil when the set has none, or no pattern is that long:
// shorter ones are answered without them).
func (s *Set) treeRows(m *onnx.Model, reqs []Request, mode Mode, out []Result) []modelGroup {
	if m == nil || mode != Routed {
		return nil
	}
	g := modelGroup{model: m}
	for i, r := range reqs {
		if len(r.Counts) >= m.InputLen && out[i].Timer == nil {
			g.rows = append(g.rows, i)
		}
	}
	if len(g.rows) == 0 {
		return nil
	}
	return []modelGroup{g}
}

// meanRows is the mean trees' run: treeRows, less the patterns in a
// silence longer than any they show (from the silence hazard's minimum
// gap): the mean trees learnt from days that all had invocations that a
// silent window must end within the hour, and a function silent for a
// day would be forecast invocations no hazard supports; its expected
// count is the level, as its p_invoke is the hazard's.
func (s *Set) meanRows(reqs []Request, mode Mode, out []Result) []modelGroup {
	return s.silentLess(s.treeRows(s.Mean, reqs, mode, out), out)
}

// silentLess is a trees run less the patterns in a silence longer than
// any they show (meanRows says why).
func (s *Set) silentLess(groups []modelGroup, out []Result) []modelGroup {
	if s.Manifest.Silence == nil {
		return groups
	}
	return rowsLess(groups, func(i int) bool { return s.inSilence(&out[i]) })
}

// rowsLess is a one-graph run less the rows drop says (nil: none left).
func rowsLess(groups []modelGroup, drop func(i int) bool) []modelGroup {
	if groups == nil {
		return nil
	}
	rows := slices.DeleteFunc(groups[0].rows, drop)
	if len(rows) == 0 {
		return nil
	}
	return []modelGroup{{model: groups[0].model, rows: rows}}
}

// inSilence says whether r's pattern ends in a silence longer than any it
// shows, of at least the set's MinGap: its p_invoke is the hazard's, and
// its expected count the level's (neither the mean trees' hour nor the
// sparse rule's p_invoke times the size its calls had before it).
func (s *Set) inSilence(r *Result) bool {
	sl := s.Manifest.Silence
	if sl == nil {
		return false
	}
	return r.silentPast(sl.MinGap)
}

// silentPast says whether r's pattern ends in a silence longer than any
// gap it closed before, of at least from minutes.
func (r *Result) silentPast(from int) bool { return r.idle > r.longest && r.idle >= from }

// dayOf appends request i's day, as a p_invoke graph takes it.
func dayOf(reqs []Request) func(in []float32, i int) []float32 {
	return func(in []float32, i int) []float32 {
		return appendPInvokeInput(in, reqs[i].Counts, manifest.PInvokeInputLen)
	}
}

// blends sets out[i].Blend for every request that soft routing blends (the
// pattern within both nearest clusters' radii, their served count models
// different, the runner-up's weight at least the manifest's minimum; no
// timer's) and groups those requests by the runner-up's model.
func (s *Set) blends(routes []router.Route, per []served, mode Mode, out []Result) []modelGroup {
	soft := s.Manifest.Routing
	if soft == nil || mode != Routed {
		return nil
	}
	var g grouping
	for i, rt := range routes {
		if rt.OOD || !rt.RunnerWithin || out[i].Timer != nil {
			continue
		}
		w := soft.RunnerWeight(rt.Distance, rt.RunnerDistance)
		m, kind := s.ServedModel(router.Route{Cluster: rt.Runner})
		if w < soft.MinWeight || m == per[i].model {
			continue
		}
		out[i].Blend = &Blend{Cluster: rt.Runner, Distance: rt.RunnerDistance, Model: m.ID, Kind: kind, Weight: w}
		g.add(m, i)
	}
	return g.groups
}

// grouping collects request indices by model, in the order models first
// appear.
type grouping struct {
	at     map[*onnx.Model]int
	groups []modelGroup
}

func (g *grouping) add(m *onnx.Model, i int) {
	k, ok := g.at[m]
	if !ok {
		if g.at == nil {
			g.at = map[*onnx.Model]int{}
		}
		k = len(g.groups)
		g.at[m] = k
		g.groups = append(g.groups, modelGroup{model: m})
	}
	g.groups[k].rows = append(g.groups[k].rows, i)
}

// runPInvoke answers p_invoke for every request. The dense model runs
// first, over its own requests and those of experts that continue its
// trees (they take its features and minute 1), then each expert once over
// its requests.
func (s *Set) runPInvoke(ctx context.Context, reqs []Request, per []served, groups []modelGroup, dense *denseRun, out []Result) error {
	for i := range out {
		out[i].PModel, out[i].PKind = per[i].model.ID, per[i].kind
	}
	if err := s.runDense(ctx, reqs, dense, s.denseRows(per)); err != nil {
		return err
	}
	for i, p := range per {
		if p.model == s.PDense {
			out[i].PInvoke = slices.Clone(dense.p[i]) // its rules change it in place
		}
	}
	buf := inputPool.Get().(*[]float32)
	defer inputPool.Put(buf)
	// An expert that continues the dense trees takes the features the dense
	// run stored for its request; every other graph takes the counts.
	input := func(in []float32, i int, m *onnx.Model) []float32 {
		if m.DenseP1 {
			return append(in, dense.features[i]...)
		}
		return appendPInvokeInput(in, reqs[i].Counts, m.InputLen)
	}
	experts := make([]modelGroup, 0, len(groups))
	for _, g := range groups {
		if g.model != s.PDense {
			experts = append(experts, g)
		}
	}
	minute1 := func(in []float32, i int) []float32 { return append(in, dense.p[i][0]) }
	return s.runGroups(ctx, experts, buf, input, minute1, func(i int, y []float32) { out[i].PInvoke = y })
}

// denseRows is the requests the dense p_invoke graph answers among per's:
// those it serves and those of experts that continue it.
func (s *Set) denseRows(per []served) []int {
	var rows []int
	for i, p := range per {
		if p.model == s.PDense || p.model.DenseP1 {
			rows = append(rows, i)
		}
	}
	return rows
}

// denseRun is the dense p_invoke graph's answers for a call's requests,
// each run at most once: p_invoke, and the features that experts
// continuing it and count trees reading them take.
type denseRun struct {
	done        []bool
	p, features [][]float32
}

func newDenseRun(n int) *denseRun {
	return &denseRun{done: make([]bool, n), p: make([][]float32, n), features: make([][]float32, n)}
}

// rows is the run seen from a call over the requests at rows (the k-th
// of its requests is request rows[k]): what it answers for them is
// shared, what it runs is its own.
func (d *denseRun) rows(rows []int) *denseRun {
	sub := newDenseRun(len(rows))
	for k, i := range rows {
		sub.done[k], sub.p[k], sub.features[k] = d.done[i], d.p[i], d.features[i]
	}
	return sub
}

// runDense runs the dense p_invoke graph once over those of rows that d
// has not answered yet.
func (s *Set) runDense(ctx context.Context, reqs []Request, d *denseRun, rows []int) error {
	g := modelGroup{model: s.PDense}
	for _, i := range rows {
		if !d.done[i] {
			d.done[i] = true // also marks a row listed twice
			g.rows = append(g.rows, i)
		}
	}
	if len(g.rows) == 0 {
		return nil
	}
	buf := inputPool.Get().(*[]float32)
	defer inputPool.Put(buf)
	input := func(in []float32, i int, m *onnx.Model) []float32 {
		return appendPInvokeInput(in, reqs[i].Counts, m.InputLen)
	}
	h := s.PDense.Horizon
	return s.runGroups(ctx, []modelGroup{g}, buf, input, nil, func(i int, y []float32) {
		d.p[i], d.features[i] = y[:h:h], y[h:]
	})
}

// featureRows is the requests whose count trees read the dense p_invoke
// graph's features (none when no trees of the set read them).
func (s *Set) featureRows(reqs []Request, mode Mode, out []Result) []int {
	for _, m := range append([]*onnx.Model{s.Trees, s.Mean}, s.Quantiles...) {
		if m != nil && m.TakesFeatures {
			if g := s.treeRows(m, reqs, mode, out); g != nil {
				return g[0].rows
			}
		}
	}
	return nil
}

// second appends request i's dense features: the second input of count
// trees that read them (Model.TakesFeatures).
func (d *denseRun) second(in []float32, i int) []float32 { return append(in, d.features[i]...) }

// runGroups runs each group's model once over its rows: input appends a
// request's model input, second its second input's values (for models
// that take one), store keeps a request's output row (its Width values).
func (s *Set) runGroups(ctx context.Context, groups []modelGroup, buf *[]float32,
	input func(in []float32, i int, m *onnx.Model) []float32, second func(in []float32, i int) []float32,
	store func(i int, y []float32)) error {
	var secBuf *[]float32 // the second inputs' buffer, taken at the first
	for _, g := range groups {
		// sized once: a day's input is 1,440 values a row
		in := slices.Grow((*buf)[:0], len(g.rows)*g.model.InWidth)
		for _, i := range g.rows {
			in = input(in, i, g.model)
		}
		*buf = in
		var sec []float32
		if g.model.SecondWidth > 0 {
			if secBuf == nil {
				secBuf = inputPool.Get().(*[]float32)
				defer inputPool.Put(secBuf)
			}
			sec = slices.Grow((*secBuf)[:0], len(g.rows)*g.model.SecondWidth)
			for _, i := range g.rows {
				sec = second(sec, i)
			}
			*secBuf = sec
		}
		p := s.predictor(g.model)
		if inline(ctx) {
			p = g.model // not through a batcher's goroutine
		}
		y, err := p.PredictDense(ctx, in, sec, len(g.rows))
		if err != nil {
			return err
		}
		for r, row := range rows(y, g.model.Width()) {
			store(g.rows[r], row)
		}
	}
	return nil
}

// plan validates a batch (one bad request fails it, nothing half-done),
// routes it and assigns every request its model.
func (s *Set) plan(ctx context.Context, reqs []Request, mode Mode) ([]router.Route, []served, []modelGroup, error) {
	if len(reqs) == 0 {
		return nil, nil, nil, fmt.Errorf("%w: no functions", ErrInvalid)
	}
	for _, r := range reqs {
		if err := s.Validate(r); err != nil {
			return nil, nil, nil, err
		}
	}
	routes, err := s.routeAll(ctx, reqs)
	if err != nil {
		return nil, nil, nil, err
	}
	per, groups := s.assign(routes, mode)
	return routes, per, groups, nil
}

// served is the model that answers one routed request, and its kind.
type served struct {
	model *onnx.Model
	kind  string
}

// modelGroup is the requests of a batch that one model answers, in one
// run.
type modelGroup struct {
	model *onnx.Model
	rows  []int
}

// input appends the group's model input, each request's last InputLen
// counts, to in.
func (g modelGroup) input(in []float32, reqs []Request) []float32 {
	for _, i := range g.rows {
		in = appendInput(in, reqs[i].Counts, g.model.InputLen)
	}
	return in
}

// second appends next's values for each of the group's requests: a second
// input (the day, or its dense features), or the day as the dense p_invoke
// graph's input.
func (g modelGroup) second(in []float32, next func(in []float32, i int) []float32) []float32 {
	for _, i := range g.rows {
		in = next(in, i)
	}
	return in
}

// assign picks the model for every routed request (the cluster's expert,
// or dense for DenseOnly, out-of-distribution patterns and clusters
// without a served expert) and groups the requests by model, in the order
// models first appear.
func (s *Set) assign(routes []router.Route, mode Mode) ([]served, []modelGroup) {
	return s.assignBy(routes, func(rt router.Route) (*onnx.Model, string) {
		if mode == Routed {
			return s.ServedModel(rt)
		}
		return s.Dense, "dense"
	})
}

// assignBy groups requests by the model choose picks for their route.
func (s *Set) assignBy(routes []router.Route, choose func(router.Route) (*onnx.Model, string)) ([]served, []modelGroup) {
	per := make([]served, len(routes))
	var g grouping
	for i, rt := range routes {
		m, kind := choose(rt)
		per[i] = served{m, kind}
		g.add(m, i)
	}
	return per, g.groups
}

// Run is one ONNX Runtime run: a model, its input rows and, for a model
// that takes one, its second input's rows.
type Run struct {
	Model  *onnx.Model
	Input  []float32
	Second []float32
	Rows   int
}

// Runs returns the model runs that Forecast makes for a batch (soft
// routing's runner-up models after the nearest clusters', then the count
// trees and the mean trees), inputs built and routes computed here, so that ONNX Runtime can
// be timed alone on the same work (the ceiling in make bench-serve).
func (s *Set) Runs(ctx context.Context, reqs []Request, mode Mode) ([]Run, error) {
	routes, per, groups, err := s.plan(ctx, reqs, mode)
	if err != nil {
		return nil, err
	}
	// the nearest clusters' models, then the runner-up models that soft
	// routing blends in, then the trees (the count, mean and, for the
	// expected count, quantile trees): none on rows the timers' expert
	// answers
	out := make([]Result, len(reqs))
	withSilence(reqs, out)
	s.markTimers(reqs, mode, out)
	groups = withoutTimers(groups, out)
	groups = append(groups, s.blends(routes, per, mode, out)...)
	trees := append(s.treeRows(s.Trees, reqs, mode, out), s.meanRows(reqs, mode, out)...)
	if s.Manifest.Expected != nil {
		// the quantile graphs a forecast runs for its expected count
		for k, m := range s.Quantiles[:levelsUpTo(s.Manifest.Quantiles, s.Manifest.Expected.Quantile)] {
			if slices.Index(s.Quantiles, m) == k {
				trees = append(trees, s.quantileRows(m, reqs, mode, Counts, out)...)
			}
		}
	}
	dense := newDenseRun(len(reqs))
	if rows := s.featureRows(reqs, mode, out); len(rows) > 0 {
		// the dense p_invoke graph's run that feeds the trees their features
		if err := s.runDense(ctx, reqs, dense, rows); err != nil {
			return nil, err
		}
		groups = append(groups, modelGroup{model: s.PDense, rows: rows})
	}
	groups = append(groups, trees...)
	runs := make([]Run, len(groups))
	for k, g := range groups {
		runs[k] = Run{Model: g.model, Rows: len(g.rows)}
		if g.model == s.PDense {
			runs[k].Input = g.second(nil, dayOf(reqs))
		} else {
			runs[k].Input = g.input(nil, reqs)
		}
		if g.model.TakesFeatures {
			runs[k].Second = g.second(nil, dense.second)
		}
	}
	return runs, nil
}

// inlineKey marks a context whose calls run on the caller's goroutine
// alone (Inline).
type inlineKey struct{}

// Inline returns ctx for calls that route and run every model on the
// calling goroutine, starting none of their own and bypassing the
// batchers: background work (the decision table) whose thread its caller
// has given a lower scheduling priority keeps that priority throughout,
// so requests answered meanwhile come first.
func Inline(ctx context.Context) context.Context { return context.WithValue(ctx, inlineKey{}, true) }

func inline(ctx context.Context) bool {
	v, _ := ctx.Value(inlineKey{}).(bool)
	return v
}

// inputPool holds model input buffers: Predict is done with its input when
// it returns (the batcher copies or runs it before answering).
var inputPool = sync.Pool{New: func() any { return new([]float32) }}

// routeAll routes every request (over all cores for a large batch).
func (s *Set) routeAll(ctx context.Context, reqs []Request) ([]router.Route, error) {
	if inline(ctx) {
		routes := make([]router.Route, len(reqs))
		for i, r := range reqs {
			rt, err := s.Router.Route(ctx, r.Counts)
			if err != nil {
				return nil, err
			}
			routes[i] = rt
		}
		return routes, nil
	}
	patterns := make([][]float64, len(reqs))
	for i, r := range reqs {
		patterns[i] = r.Counts
	}
	return s.Router.RouteAll(ctx, patterns)
}

// ErrUnknownModel marks a model id that is not in service.
var ErrUnknownModel = errors.New("unknown model")

// ForecastModel runs one named model ("dense" or an expert's id) on every
// request, without routing (the KServe V2 per-model endpoints).
func (f *Forecaster) ForecastModel(ctx context.Context, reqs []Request, modelID string) ([]Result, error) {
	s, release, err := f.Acquire()
	if err != nil {
		return nil, err
	}
	defer release()
	m := s.Model(modelID)
	if m == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownModel, modelID)
	}
	if len(reqs) == 0 {
		return nil, fmt.Errorf("%w: no functions", ErrInvalid)
	}
	in := make([]float32, 0, len(reqs)*m.InputLen)
	for _, r := range reqs {
		if len(r.Counts) < m.InputLen {
			return nil, fmt.Errorf("%w: function %q: %d counts, model %s needs at least %d", ErrInvalid, r.ID, len(r.Counts), m.ID, m.InputLen)
		}
		if err := checkCounts(r); err != nil {
			return nil, err
		}
		in = appendInput(in, r.Counts, m.InputLen)
	}
	var second []float32
	if m.TakesFeatures { // count trees that read the dense p_invoke features
		g := modelGroup{model: m, rows: make([]int, len(reqs))}
		for i := range g.rows {
			g.rows[i] = i
		}
		dense := newDenseRun(len(reqs))
		if err := s.runDense(ctx, reqs, dense, g.rows); err != nil {
			return nil, err
		}
		second = g.second(nil, dense.second)
	}
	y, err := s.predictor(m).PredictDense(ctx, in, second, len(reqs))
	if err != nil {
		return nil, err
	}
	out := make([]Result, len(reqs))
	fc := rows(y, m.Width())
	for i, r := range reqs {
		out[i] = Result{ID: r.ID, Cluster: -1, Model: m.ID, Family: m.Family, Forecast: fc[i]}
	}
	return out, nil
}
