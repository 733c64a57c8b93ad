package forecast

import (
	"time"

	"github.com/mesp-project/mesp/manifest"
)

// Catalog is what a loaded set is, as data (no sessions): what the HTTP
// handlers list and check requests against. It is a snapshot: a reload
// makes a new one, and the old one stays as it was.
type Catalog struct {
	Manifest manifest.Manifest
	Clusters manifest.Clusters
	Dir      string
	LoadedAt time.Time
	// MaxInputLen is the longest model input (the shortest pattern served);
	// InputLens holds every count model's by id.
	MaxInputLen int
	InputLens   map[string]int
}

func newCatalog(s *Set, dir string) Catalog {
	lens := map[string]int{s.Dense.ID: s.Dense.InputLen}
	for _, m := range s.Experts {
		lens[m.ID] = m.InputLen
	}
	if s.Trees != nil {
		lens[s.Trees.ID] = s.Trees.InputLen
	}
	return Catalog{Manifest: s.Manifest, Clusters: s.Clusters, Dir: dir, LoadedAt: s.LoadedAt,
		MaxInputLen: s.MaxInputLen, InputLens: lens}
}

// Catalog describes the set (made once, at load; read-only).
func (s *Set) Catalog() Catalog { return s.catalog }

// QuantileNames is the quantiles the set answers, as outputs name them:
// the median's ("q0.5") and each quantile trees' ("q0.9").
func (c Catalog) QuantileNames() []string {
	out := []string{manifest.QuantileName(Median)}
	for _, q := range c.Manifest.Quantiles {
		out = append(out, manifest.QuantileName(q.Q))
	}
	return out
}

// Answers says whether the set answers quantile q: the median, a level
// it serves or one between two of them (QuantileAt).
func (c Catalog) Answers(q float64) bool {
	top := Median
	if n := len(c.Manifest.Quantiles); n > 0 {
		top = c.Manifest.Quantiles[n-1].Q
	}
	return q >= Median && q <= top
}

// ExpectedApart says whether the set's forecast (the expected count) may
// differ from its median: it has mean trees, an expected entry or a sparse
// rule (without any, the forecast is the median).
func (c Catalog) ExpectedApart() bool {
	m := c.Manifest
	return m.Mean != nil || m.Expected != nil || m.Sparse != nil
}

// PInvoke says whether the set answers per-minute invocation probabilities.
func (c Catalog) PInvoke() bool { return c.Manifest.Dense.PInvoke != nil }

// PrewarmThreshold is the manifest's default pre-warm threshold (0 when
// the set has none).
func (c Catalog) PrewarmThreshold() float64 {
	if c.Manifest.Prewarm == nil {
		return 0
	}
	return c.Manifest.Prewarm.Threshold
}

// Catalog describes the set in service; ok is false before the first load.
func (f *Forecaster) Catalog() (c Catalog, ok bool) {
	s := f.Current()
	if s == nil {
		return Catalog{}, false
	}
	return s.catalog, true
}

// ReloadCatalog loads the folder anew, as Reload does, and describes the
// new set.
func (f *Forecaster) ReloadCatalog() (Catalog, error) {
	s, err := f.Reload()
	if err != nil {
		return Catalog{}, err
	}
	return s.catalog, nil
}
