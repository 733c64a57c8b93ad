package kshape

import "math"

// Transform maps raw per-minute counts to the representation whose shape is
// clustered and routed: log1p tames bursts (one spike of 10,000 would
// otherwise be the whole shape) and a centred moving average of Smooth
// minutes removes the Poisson noise of low counts, which at one-minute
// resolution hides the daily shape of most functions. The same Transform
// must be applied at clustering and at routing: clusters.json records it.
type Transform struct {
	Log1p  bool `json:"log1p"`
	Smooth int  `json:"smooth"` // window in minutes; 0 or 1: none
}

// Apply returns the transformed series (a new slice).
func (tr Transform) Apply(x []float64) []float64 {
	return tr.ApplyInto(make([]float64, len(x)), x, make([]float64, len(x)+1))
}

// ApplyInto writes the transformed x into dst (len(x)), using scratch
// (len(x)+1) for prefix sums, and returns dst: no allocation on the routing
// path.
func (tr Transform) ApplyInto(dst, x, scratch []float64) []float64 {
	dst = dst[:len(x)]
	for i, v := range x {
		if tr.Log1p {
			v = log1p(v)
		}
		dst[i] = v
	}
	if tr.Smooth <= 1 {
		return dst
	}
	// Centred moving average with a shrinking window at the edges, by
	// prefix sums (O(n) whatever the window).
	prefix := scratch[:len(x)+1]
	prefix[0] = 0
	for i, v := range dst {
		prefix[i+1] = prefix[i] + v
	}
	half := tr.Smooth / 2
	for i := range dst {
		lo, hi := max(0, i-half), min(len(dst), i-half+tr.Smooth)
		dst[i] = (prefix[hi] - prefix[lo]) / float64(hi-lo)
	}
	return dst
}

// log1pSmall holds log1p of the counts 0..4095: per-minute counts are
// integers, mostly small, and a table read is a tenth of math.Log1p's cost
// on the routing path (1,440 per pattern). The values are math.Log1p's own.
var log1pSmall = func() []float64 {
	t := make([]float64, 4096)
	for i := range t {
		t[i] = math.Log1p(float64(i))
	}
	return t
}()

func log1p(v float64) float64 {
	if v >= 0 && v < float64(len(log1pSmall)) {
		if i := int(v); float64(i) == v {
			return log1pSmall[i]
		}
	}
	return math.Log1p(v)
}
