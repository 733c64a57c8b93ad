package provision

// The silent copies of the platform mix are warm mostly in the first hour
// after their last call, where a function that stopped and one that
// paused show the same history. SilenceFrontier measures what holding
// them to a share of their minutes costs the active functions when the
// threshold may be higher once a function has been idle a while: a
// second threshold by idle minutes is the freest use of the served
// p_invoke short of a model that tells a stop from a pause.

// FrontierPoint is the policy "warm when p_invoke reaches Threshold, or
// Silent once the function has been idle From minutes or more" with the
// fewest cold starts on the mix whose idle minutes stay within
// keepalive10's and whose silent copies are warm at most the share asked.
type FrontierPoint struct {
	From              int
	Threshold, Silent float64
	// Found is false when no pair of the grid meets both bounds.
	Found                                     bool
	ColdStarts, IdleMinutes                   int
	SilentIdleMinutes, SilentMinutes          int
	ReferenceColdStarts, ReferenceIdleMinutes int
}

// IdleBefore is, for each simulated minute m, the minutes since the last
// invoked minute before m (m-1 when none was: longer than any gap).
func IdleBefore(day []float64) []int {
	out := make([]int, End-Start+1)
	last := 0 // minute number of the last invocation, 0: none
	for m := 1; m <= End; m++ {
		if m >= Start {
			out[m-Start] = m - 1 - last
		}
		if day[m-1] > 0 {
			last = m
		}
	}
	return out
}

// idleBefore is IdleBefore of each day.
func idleBefore(days [][]float64) [][]int {
	out := make([][]int, len(days))
	for i, d := range days {
		out[i] = IdleBefore(d)
	}
	return out
}

// regionCounts are a grid's cold starts and idle minutes, per threshold,
// over the minutes at idle below from (low) and at or above it (high).
type regionCounts struct{ coldLow, coldHigh, idleLow, idleHigh []int }

func countRegions(days, ps [][]float64, idles [][]int, thresholds []float64, from int) regionCounts {
	n := len(thresholds)
	rc := regionCounts{make([]int, n), make([]int, n), make([]int, n), make([]int, n)}
	for i, day := range days {
		idle := idles[i]
		for m := Start; m <= End; m++ {
			p, invoked := ps[i][m-Start], day[m-1] > 0
			cold, idleM := rc.coldLow, rc.idleLow
			if idle[m-Start] >= from {
				cold, idleM = rc.coldHigh, rc.idleHigh
			}
			for k, th := range thresholds {
				warm := p >= th
				switch {
				case invoked && !warm:
					cold[k]++
				case !invoked && warm:
					idleM[k]++
				}
			}
		}
	}
	return rc
}

// SilenceFrontier is, for each of froms, the best FrontierPoint over every
// pair of thresholds (the silent one at least the other), on active (with
// MespP) and silent (its SilentCopies, with MespP), the silent copies held
// to maxSilentShare of their minutes.
func SilenceFrontier(active Inputs, silent SilentInputs, thresholds []float64, froms []int, maxSilentShare float64) ([]FrontierPoint, error) {
	if err := checkMix(active, silent); err != nil {
		return nil, err
	}
	ref, _ := mixReference(active, silent)
	silentMinutes := len(active.Days) * (End - Start + 1)
	activeIdle, silentIdleBefore := idleBefore(active.Days), idleBefore(silent.Days)
	var out []FrontierPoint
	for _, from := range froms {
		a := countRegions(active.Days, active.MespP, activeIdle, thresholds, from)
		s := countRegions(silent.Days, silent.MespP, silentIdleBefore, thresholds, from)
		best := FrontierPoint{From: from, SilentMinutes: silentMinutes, ReferenceColdStarts: ref.ColdStarts, ReferenceIdleMinutes: ref.IdleMinutes}
		for lo, th := range thresholds {
			for hi, ths := range thresholds {
				if ths < th {
					continue
				}
				silentIdle := s.idleLow[lo] + s.idleHigh[hi]
				idle := a.idleLow[lo] + a.idleHigh[hi] + silentIdle
				cold := a.coldLow[lo] + a.coldHigh[hi]
				if idle > ref.IdleMinutes || float64(silentIdle) > maxSilentShare*float64(silentMinutes) {
					continue
				}
				if !best.Found || cold < best.ColdStarts || cold == best.ColdStarts && idle < best.IdleMinutes {
					best.Found, best.Threshold, best.Silent = true, th, ths
					best.ColdStarts, best.IdleMinutes, best.SilentIdleMinutes = cold, idle, silentIdle
				}
			}
		}
		out = append(out, best)
	}
	return out, nil
}
