// Package periodic finds timer-like functions, those invoked at a
// dominant period (a cron or timer trigger, a polling client), from their
// history alone, and forecasts their next minutes in phase: each minute
// ahead is the mean of the same phase minute over the last cycles.
//
// Timers are the most predictable workload there is, and the one a model
// fitted to every kind of pattern forecasts worst out of phase: its next
// pulse minutes away looks, in the last two hours' window, like any sparse
// function's silence. Real timers fire a minute early or late at random;
// the detector tolerates that jitter and the mean over cycles spreads a
// pulse over the minutes it lands on in proportion, so the hour's volume
// comes out right.
package periodic

import (
	"math"
	"math/bits"
	"slices"
	"sync"
)

// Detector settings. A period needs MinCycles cycles in the history read
// (at most Lookback minutes); a pattern invoked in more than MaxActive of
// its minutes is a rate, not a timer (the count models serve rates well).
const (
	MinPeriod = 2
	MinCycles = 3
	Lookback  = 1440
	MaxActive = 0.5
	// MinPulses is the fewest invoked minutes a period is judged on.
	MinPulses = 4
	// MinKappa is how far above chance the pulses must agree with the
	// period: (agreement - chance) / (1 - chance), where agreement is the
	// share of pulses whose neighbours one period back and one period ahead
	// (within the jitter tolerance, where the history reaches) are pulses
	// too, and chance the same share for pulses placed at random at the
	// pattern's rate.
	MinKappa = 0.85
	// MaxCycles is how many past cycles a forecast averages: enough to
	// average a jittered pulse out, few enough to follow a change of size.
	MaxCycles = 8
)

// scratch is Detect's working memory.
type scratch struct {
	before, pulses, hist []int
	// invoked is the history's invoked minutes as a bitset; near[t] the
	// minutes with an invoked one within t of them (nearDone[t]: built)
	invoked  []uint64
	near     [maxTolerance + 1][]uint64
	nearDone [maxTolerance + 1]bool
}

// maxTolerance is Tolerance's largest answer.
const maxTolerance = 2

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// Timer is a detected period.
type Timer struct {
	// Period in minutes.
	Period int
	// Tolerance is the jitter, in minutes either side, a pulse may land
	// off its phase and still count as on it.
	Tolerance int
	// Kappa is the agreement of the pulses with the period above chance.
	Kappa float64
	// Pulses is the number of invoked minutes judged.
	Pulses int
	// Cycle is the period, a multiple of Period, at which the pulses'
	// sizes repeat, where it is not Period itself (0): two schedules on
	// one function, every 5 minutes and on the hour, pulse every 5
	// minutes and repeat every 60, and a forecast in phase at 5 averages
	// the hourly pulse away. The forecasts are in phase at Cycle.
	Cycle int
}

// forecastPeriod is the period the forecasts are in phase at.
func (t Timer) forecastPeriod() int {
	if t.Cycle > 0 {
		return t.Cycle
	}
	return t.Period
}

// Tolerance is the jitter allowed for a period: two minutes (a pulse a
// minute late after one a minute early is two minutes off the period),
// less for periods so short that the window would cover most of a cycle
// and make any busy pattern "periodic": one minute for 5 and 6, none
// below.
func Tolerance(period int) int {
	switch {
	case period < 5:
		return 0
	case period < 7:
		return 1
	default:
		return 2
	}
}

// Detect finds the shortest period at which the history's invoked minutes
// recur. ok is false for a pattern that is no timer: too few pulses, too
// busy, or no period whose pulses agree with it far above chance and keep
// to a few phases of its cycle.
func Detect(counts []float64) (t Timer, ok bool) {
	x := counts[max(0, len(counts)-Lookback):]
	n := len(x)
	// every routed forecast and every function of a minute's decision
	// table runs Detect: its working memory is pooled
	s := scratchPool.Get().(*scratch)
	defer scratchPool.Put(s)
	pulses := s.pulses[:0]
	defer func() { s.pulses = pulses[:0] }()
	// before[i] is the number of invoked minutes among x[:i]
	before := slices.Grow(s.before[:0], n+1)[:n+1]
	s.before = before
	before[0] = 0
	for i, v := range x {
		before[i+1] = before[i]
		if v > 0 {
			pulses = append(pulses, i)
			before[i+1]++
		}
	}
	if len(pulses) < MinPulses || float64(len(pulses)) > MaxActive*float64(n) {
		return Timer{}, false
	}
	rate := float64(len(pulses)) / float64(n)
	s.setInvoked(pulses, n)
	// the chance that a tolerance window around a minute holds a pulse
	var chances [maxTolerance + 1]float64
	for t := range chances {
		chances[t] = 1 - math.Pow(1-rate, float64(2*t+1))
	}
	for p := MinPeriod; p*MinCycles <= n; p++ {
		tol := Tolerance(p)
		// a neighbour is judged where its whole tolerance window lies in
		// the history: pulses at or after p+tol look back, those at or
		// before n-1-p-tol look ahead
		judged := len(pulses) - before[min(n, p+tol)] + before[max(0, n-p-tol)]
		if judged < 2*MinPulses {
			continue
		}
		chance := chances[tol]
		need := chance + MinKappa*(1-chance)
		allowed := judged - int(math.Ceil(need*float64(judged)))
		misses := s.misses(p, tol, n, allowed)
		if misses > allowed || !fewPhases(pulses, p, tol, s) {
			continue
		}
		agree := float64(judged-misses) / float64(judged)
		t := Timer{Period: refine(x, pulses, p, tol), Tolerance: tol, Kappa: (agree - chance) / (1 - chance), Pulses: len(pulses)}
		t.Cycle = sizeCycle(x, t.Period)
		return t, true
	}
	return Timer{}, false
}

// setInvoked sets the scratch's bitset of invoked minutes (pulses of a
// history of n minutes) and forgets the neighbourhoods of the last.
func (s *scratch) setInvoked(pulses []int, n int) {
	words := (n + 63) / 64
	s.invoked = slices.Grow(s.invoked[:0], words)[:words]
	clear(s.invoked)
	for _, i := range pulses {
		s.invoked[i>>6] |= 1 << uint(i&63)
	}
	s.nearDone = [maxTolerance + 1]bool{}
}

// nearBy is the bitset of minutes with an invoked minute within tol of
// them, built once per history (bits past the history's end may be set:
// no check reads them).
func (s *scratch) nearBy(tol int) []uint64 {
	if s.nearDone[tol] {
		return s.near[tol]
	}
	words := len(s.invoked)
	nb := slices.Grow(s.near[tol][:0], words)[:words]
	copy(nb, s.invoked)
	for d := 1; d <= tol; d++ {
		for w := range nb {
			nb[w] |= shiftedUp(s.invoked, w, d) | shiftedDown(s.invoked, w, d)
		}
	}
	s.near[tol], s.nearDone[tol] = nb, true
	return nb
}

// misses is how many of a period's neighbour checks find no invoked
// minute within tol: for each pulse i, minute i - p (where i - p - tol >=
// 0) and minute i + p (where i + p + tol < n); counted until it passes
// allowed (any count above allowed fails the period alike). A word of 64
// minutes at a time: the pulses against the neighbourhood bitset shifted
// by the period, so a busy day costs its words, not its pulses.
func (s *scratch) misses(p, tol, n, allowed int) int {
	nb := s.nearBy(tol)
	count := 0
	backFrom, aheadTo := p+tol, n-1-p-tol // pulses judged each way
	for w := range s.invoked {
		pulses := s.invoked[w]
		if pulses == 0 {
			continue
		}
		// back: minute i-p has none near; ahead: minute i+p has none near
		count += bits.OnesCount64(pulses &^ shiftedUp(nb, w, p) & span(w, backFrom, n-1))
		if aheadTo >= 0 {
			count += bits.OnesCount64(pulses &^ shiftedDown(nb, w, p) & span(w, 0, aheadTo))
		}
		if count > allowed {
			break
		}
	}
	return count
}

// shiftedUp is word w of bitset b moved d minutes later: bit i is b's bit
// i - d.
func shiftedUp(b []uint64, w, d int) uint64 {
	q, r := d>>6, uint(d&63)
	var v uint64
	if k := w - q; k >= 0 && k < len(b) {
		v = b[k] << r
	}
	if k := w - q - 1; r != 0 && k >= 0 && k < len(b) {
		v |= b[k] >> (64 - r)
	}
	return v
}

// shiftedDown is word w of bitset b moved d minutes earlier: bit i is b's
// bit i + d.
func shiftedDown(b []uint64, w, d int) uint64 {
	q, r := d>>6, uint(d&63)
	var v uint64
	if k := w + q; k < len(b) {
		v = b[k] >> r
	}
	if k := w + q + 1; r != 0 && k < len(b) {
		v |= b[k] << (64 - r)
	}
	return v
}

// span is the bits of word w for minutes lo..hi.
func span(w, lo, hi int) uint64 {
	from, to := max(lo-w*64, 0), min(hi-w*64, 63)
	if from > to {
		return 0
	}
	return (^uint64(0) >> uint(63-to)) &^ (1<<uint(from) - 1)
}

// refine picks the period among p..p+2 tol that the pulses repeat at most
// exactly: the shortest period found within a jitter tolerance may be a
// little short of the true one (an hourly timer agrees with 58 minutes at
// two minutes' tolerance), and a short period drifts out of phase.
func refine(x []float64, pulses []int, p, tol int) int {
	best, bestHits := p, -1
	for q := p; q <= p+2*tol && q < len(x); q++ {
		hits := 0
		for _, i := range pulses {
			if i >= q && x[i-q] > 0 {
				hits++
			}
		}
		if hits > bestHits {
			best, bestHits = q, hits
		}
	}
	return best
}

// Size cycles: the multiples of a timer's period tried (at most
// MaxCycleMultiple of it, with MinCycles cycles of the multiple in the
// history), how many of the last cycles they are judged on (at most
// CycleJudged, half the history's), and how much less error forecasts
// of those cycles' volumes must have at the multiple than at the period
// (chance lets some multiple fit a little better).
const (
	MaxCycleMultiple = 24
	CycleJudged      = 96
	CycleGain        = 0.5
)

// sizeCycle is the multiple of period p at which the history's cycle
// volumes repeat, 0 where none does better than p itself. The volumes
// are summed over cycles of p that begin at its quietest phase, so that
// a jittered pulse stays inside its cycle; each of the last judged
// cycles' volume is forecast as the mean of the same cycle k cycles back,
// over the last MaxCycles such (k = 1: the period itself), and the k with
// the least absolute error wins where that error is under CycleGain
// times k = 1's and varies by more than a tenth of a cycle's volume.
func sizeCycle(x []float64, p int) int {
	quiet, least := 0, math.Inf(1)
	for phase := range p {
		var s float64
		for i := phase; i < len(x); i += p {
			s += x[i]
		}
		if s < least {
			quiet, least = phase, s
		}
	}
	var buf [1440]float64 // cycle volumes: at most one a minute
	vol := buf[:0]
	var total float64
	for at := quiet; at+p <= len(x); at += p {
		var s float64
		for _, v := range x[at : at+p] {
			s += v
		}
		vol = append(vol, s)
		total += s
	}
	judged := min(CycleJudged, len(vol)/2)
	if judged == 0 || total == 0 {
		return 0
	}
	base := cycleError(vol, 1, judged)
	if base < 0.1*float64(judged)*total/float64(len(vol)) {
		return 0 // volumes as steady as the period's own forecast needs
	}
	best, bestErr := 0, CycleGain*base
	for k := 2; k <= MaxCycleMultiple && k*MinCycles <= len(vol) && k <= len(vol)-judged; k++ {
		if e := cycleError(vol, k, judged); e < bestErr {
			best, bestErr = k*p, e
		}
	}
	return best
}

// cycleError is the absolute error over the last judged cycle volumes of
// forecasting each as the mean of the volumes k, 2k, ... cycles before it
// (at most MaxCycles of them, those held).
func cycleError(vol []float64, k, judged int) float64 {
	var total float64
	for c := len(vol) - judged; c < len(vol); c++ {
		var s, n float64
		for j := 1; j <= MaxCycles && c-j*k >= 0; j++ {
			s += vol[c-j*k]
			n++
		}
		total += math.Abs(vol[c] - s/n)
	}
	return total
}

// PhaseShare is the share of pulses that must fall on the busiest phases
// of a cycle: at most half of its minutes, or one jitter window.
const PhaseShare = 0.9

// fewPhases says whether the pulses keep to a few phases of the cycle, as
// a timer's do: a busy stretch of minutes agrees with every short period
// but spreads over all of its phases.
func fewPhases(pulses []int, p, tol int, s *scratch) bool {
	hist := slices.Grow(s.hist[:0], p)[:p]
	s.hist = hist
	clear(hist)
	for _, i := range pulses {
		hist[i%p]++
	}
	slices.SortFunc(hist, func(a, b int) int { return b - a })
	var top int
	for _, c := range hist[:max(p/2, min(p, 2*tol+1))] {
		top += c
	}
	return float64(top) >= PhaseShare*float64(len(pulses))
}

// Forecast is the next horizon minutes in phase: minute t+h is the mean of
// minutes t+h-kP over the last cycles k that the history holds (at most
// MaxCycles), so a pulse that lands at random on one of three minutes is
// forecast as a third of its size on each, and the hour's volume is the
// cycles' mean volume. p is the share of those cycles with an invocation
// in that minute.
func (t Timer) Forecast(counts []float64, horizon int) (mean, p []float64) {
	mean, p = make([]float64, horizon), make([]float64, horizon)
	var buf []float64
	for h := 1; h <= horizon; h++ {
		buf = t.phase(counts, h, buf[:0])
		var s, hits float64
		for _, v := range buf {
			s += v
			if v > 0 {
				hits++
			}
		}
		if k := float64(len(buf)); k > 0 {
			mean[h-1], p[h-1] = s/k, hits/k
		}
	}
	return mean, p
}

// Quantile is the next horizon minutes' q-quantile in phase: minute t+h's
// is the smallest of minutes t+h-kP over the last cycles (those Forecast
// averages) that at least a share q of them do not exceed. A pulse that
// lands on one of three minutes at random has its size as the 0.9
// quantile of each of them: what a platform provisions for.
func (t Timer) Quantile(counts []float64, horizon int, q float64) []float64 {
	out := make([]float64, horizon)
	var buf []float64
	for h := 1; h <= horizon; h++ {
		buf = t.phase(counts, h, buf[:0])
		if len(buf) == 0 {
			continue
		}
		slices.Sort(buf)
		out[h-1] = buf[max(0, int(math.Ceil(q*float64(len(buf))))-1)]
	}
	return out
}

// phase appends minute t+h's counterparts in the last cycles the history
// holds (at most MaxCycles of them), minutes t+h-kP, to buf; P is the
// forecasts' period (Cycle where the sizes repeat at a multiple).
func (t Timer) phase(counts []float64, h int, buf []float64) []float64 {
	n, period := len(counts), t.forecastPeriod()
	// the first cycle back that the history holds
	for c := (h + period - 1) / period; c <= MaxCycles+(h-1)/period; c++ {
		i := n - 1 + h - c*period
		if i < 0 {
			break
		}
		buf = append(buf, counts[i])
	}
	return buf
}

// OffPhaseCap is, for each of the next horizon minutes, the most p_invoke
// the history supports: 1 at a minute within the jitter tolerance of a
// phase the last cycles (at most MaxCycles, those Forecast averages) were
// invoked at; elsewhere the rate at which the history's minutes at those
// off phases were invoked, (invoked + 1) / (minutes + 2), so that no
// evidence caps nothing. A timer answered by a model that sees no period
// kept minutes between its pulses warm (p_invoke 0.47-0.61 at minutes no
// cycle of an exact 45-minute timer ever invoked).
func (t Timer) OffPhaseCap(counts []float64, horizon int) []float64 {
	n, period := len(counts), t.forecastPeriod()
	out := make([]float64, horizon)
	for h := range out {
		out[h] = 1
	}
	if period <= 0 || n < period {
		return out
	}
	// pos is the phase of history index i, counted so that minute h
	// ahead (index n-1+h) is at (h-1) mod period.
	pos := func(i int) int { return ((i-n)%period + period) % period }
	hit := make([]bool, period)
	for i := max(0, n-MaxCycles*period); i < n; i++ {
		if counts[i] > 0 {
			hit[pos(i)] = true
		}
	}
	off := make([]bool, period)
	for j := range off {
		off[j] = true
		for d := -t.Tolerance; d <= t.Tolerance; d++ {
			if hit[((j+d)%period+period)%period] {
				off[j] = false
				break
			}
		}
	}
	var invoked, minutes float64
	for i := max(0, n-Lookback); i < n; i++ {
		if off[pos(i)] {
			minutes++
			if counts[i] > 0 {
				invoked++
			}
		}
	}
	rate := (invoked + 1) / (minutes + 2)
	for h := range out {
		if off[h%period] {
			out[h] = rate
		}
	}
	return out
}
