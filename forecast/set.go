// Package forecast is the online path shared by the HTTP server and the
// evaluation: validate a pattern, route it, run the chosen ONNX model, and
// hot-swap the whole model set when the models folder changes.
package forecast

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/mesp-project/mesp/manifest"
	"github.com/mesp-project/mesp/onnx"
	"github.com/mesp-project/mesp/router"
)

// Set is one consistent generation of manifest, router and models. It is
// immutable once loaded; a reload builds a new Set and swaps it in.
type Set struct {
	Manifest manifest.Manifest
	Clusters manifest.Clusters
	Router   *router.Router
	Dense    *onnx.Model
	Experts  map[int]*onnx.Model // every expert in the manifest, served or not
	// PDense and PExperts are the p_invoke models (nil and empty when the
	// manifest has none); PExperts holds only the experts that serve.
	PDense   *onnx.Model
	PExperts map[int]*onnx.Model
	// Trees is the count trees blended into every routed forecast
	// (manifest.Trees; nil: none).
	Trees *onnx.Model
	// Mean is the mean trees whose expected count the routed forecast
	// answers beside the median (manifest.Mean; nil: none).
	Mean *onnx.Model
	// Quantiles is the quantile trees, one per manifest.Quantiles entry,
	// in its order.
	Quantiles []*onnx.Model
	// skipTimers serves without the timers' expert (Forecaster.SkipTimers).
	skipTimers bool
	LoadedAt   time.Time
	// batchers merge concurrent small requests per model (nil: no batching)
	batchers map[*onnx.Model]*onnx.Batcher
	// MaxInputLen is the longest count model input (the count trees
	// aside): the shortest pattern served.
	MaxInputLen int
	catalog     Catalog

	mu      sync.Mutex
	refs    int
	retired bool
	closed  bool
}

// LoadSet reads dir/manifest.json and its clusters file, then verifies
// every ONNX file's sha256 and loads every model that can answer (shapes,
// metadata, a test inference): all but the p_invoke experts that do not
// serve. Any failure fails the whole load, so a bad file never enters
// service.
func LoadSet(dir string, o onnx.Options, b Batching) (*Set, error) {
	m, err := manifest.ReadManifest(dir)
	if err != nil {
		return nil, err
	}
	raw, err := manifest.Open(dir, m.Clusters, m.ClustersSHA256)
	if err != nil {
		return nil, fmt.Errorf("forecast: the clusters the experts were trained on: %w", err)
	}
	cs, err := manifest.ParseClusters(filepath.Join(dir, m.Clusters), raw)
	if err != nil {
		return nil, err
	}
	rt, err := router.New(cs)
	if err != nil {
		return nil, err
	}
	if m.Routing != nil {
		// soft routing blends the runner-up's model, where it is near
		rt.WithRunnerUpWithin(m.Routing.RunnerGap())
	}
	s := &Set{Manifest: m, Clusters: cs, Router: rt, Experts: map[int]*onnx.Model{}, PExperts: map[int]*onnx.Model{},
		LoadedAt: time.Now()}
	known := map[int]bool{}
	for _, c := range cs.Clusters {
		known[c.ID] = true
	}
	// open verifies a file the manifest names (inside the folder, its
	// sha256) and loads it as the model want describes.
	open := func(file, sum string, want onnx.Expect) (*onnx.Model, error) {
		data, err := manifest.Open(dir, file, sum)
		if err != nil {
			return nil, err
		}
		return onnx.LoadBytes(filepath.Join(dir, file), data, want, o)
	}
	load := func(e manifest.Model) (*onnx.Model, error) {
		mod, err := open(e.File, e.SHA256, onnx.Expect{ID: e.ID, SHA256: e.SHA256, InputLen: e.InputLen, Horizon: m.Horizon})
		if err != nil {
			return nil, err
		}
		s.MaxInputLen = max(s.MaxInputLen, e.InputLen)
		return mod, nil
	}
	// An expert whose trees continue the dense p_invoke model's is fed the
	// dense graph's features, so the dense graph answers them when such an
	// expert serves.
	continued := false
	for _, e := range m.Experts {
		continued = continued || (e.PInvoke != nil && e.PInvoke.Base != "" && e.PInvoke.Serve == "expert")
	}
	// Count trees that read the dense graph's features are fed them too.
	for _, g := range m.TreesGraphs() {
		continued = continued || g.DenseFeatures
	}
	loadP := func(p *manifest.PInvoke, features bool) (*onnx.Model, error) {
		if p == nil {
			return nil, nil
		}
		want := onnx.Expect{ID: p.ID, SHA256: p.SHA256, InputLen: p.InputLen, Horizon: m.Horizon,
			Output: manifest.PInvokeOutputName, Features: features}
		if p.Base != "" {
			want.DenseP1, want.FeaturesIn = true, s.PDense.Features
		}
		return open(p.File, p.SHA256, want)
	}
	if s.Dense, err = load(m.Dense); err != nil {
		s.close()
		return nil, err
	}
	if s.PDense, err = loadP(m.Dense.PInvoke, continued); err != nil {
		s.close()
		return nil, err
	}
	type treesGraph struct {
		g   manifest.TreesGraph
		dst **onnx.Model
	}
	var trees []treesGraph
	for _, tm := range []struct {
		t   *manifest.Trees
		dst **onnx.Model
	}{{m.Trees, &s.Trees}, {m.Mean, &s.Mean}} {
		if tm.t != nil {
			trees = append(trees, treesGraph{tm.t.TreesGraph, tm.dst})
		}
	}
	// levels that share a graph share one loaded model
	s.Quantiles = make([]*onnx.Model, len(m.Quantiles))
	first := map[string]int{}
	for i, q := range m.Quantiles {
		if _, ok := first[q.File]; !ok {
			first[q.File] = i
			trees = append(trees, treesGraph{q.TreesGraph, &s.Quantiles[i]})
		}
	}
	for _, t := range trees {
		want := onnx.Expect{ID: t.g.ID, SHA256: t.g.SHA256, InputLen: t.g.InputLen, Horizon: m.Horizon}
		if t.g.DenseFeatures {
			if err := denseFeaturesOf(t.g, m.Dense.PInvoke); err != nil {
				s.close()
				return nil, err
			}
			want.TakesFeatures, want.FeaturesIn = true, s.PDense.Features
		}
		if *t.dst, err = open(t.g.File, t.g.SHA256, want); err != nil {
			s.close()
			return nil, err
		}
		// Not part of MaxInputLen: the trees answer where a pattern holds
		// their window, and a shorter one is served without them.
		if t.g.InputLen > rt.Length() {
			s.close()
			return nil, fmt.Errorf("forecast: count trees %s need %d minutes, the router takes at most %d", t.g.ID, t.g.InputLen, rt.Length())
		}
	}
	for i, q := range m.Quantiles {
		s.Quantiles[i] = s.Quantiles[first[q.File]]
	}
	for _, e := range m.Experts {
		if !known[e.Cluster] {
			s.close()
			return nil, fmt.Errorf("forecast: expert %s is for cluster %d, which %s does not have", e.ID, e.Cluster, m.Clusters)
		}
		mod, err := load(e.Model)
		if err != nil {
			s.close()
			return nil, err
		}
		s.Experts[e.Cluster] = mod
		if e.PInvoke != nil && e.PInvoke.Serve != "expert" {
			// Never answers (the dense p_invoke model does for its
			// cluster): its file is checked, but a session would only
			// cost memory and load time.
			if _, err := manifest.Open(dir, e.PInvoke.File, e.PInvoke.SHA256); err != nil {
				s.close()
				return nil, err
			}
			continue
		}
		pm, err := loadP(e.PInvoke, false)
		if err != nil {
			s.close()
			return nil, err
		}
		if pm != nil {
			s.PExperts[e.Cluster] = pm
		}
	}
	if s.MaxInputLen > rt.Length() {
		s.close()
		return nil, fmt.Errorf("forecast: a model needs %d minutes, the router takes at most %d", s.MaxInputLen, rt.Length())
	}
	if b.Wait > 0 {
		s.batchers = map[*onnx.Model]*onnx.Batcher{}
		for _, m := range s.models() {
			s.batchers[m] = onnx.NewBatcher(m, b.Wait, b.MaxRows)
		}
	}
	s.catalog = newCatalog(s, dir)
	return s, nil
}

// denseFeaturesOf checks that trees reading the dense p_invoke graph's
// features are fed the graph they were fitted on: the set's own, by
// sha256 (a dense graph retrained alone answers other features, and the
// trees would read them without an error).
func denseFeaturesOf(g manifest.TreesGraph, dense *manifest.PInvoke) error {
	switch {
	case dense == nil:
		return fmt.Errorf("%w: count trees %s read the dense p_invoke features, and the set has no dense p_invoke model", onnx.ErrMismatch, g.ID)
	case g.FeaturesOf == nil || g.FeaturesOf.SHA256 != dense.SHA256:
		return fmt.Errorf("%w: count trees %s were fitted on the features of another dense p_invoke graph than the set's %s (%s): fit them again on it", onnx.ErrMismatch, g.ID, dense.ID, dense.SHA256)
	}
	return nil
}

// Batching merges concurrent small requests to one model (Wait 0: off).
type Batching struct {
	Wait    time.Duration
	MaxRows int
}

// predictor is the batched path to m when batching is on.
func (s *Set) predictor(m *onnx.Model) onnx.Predictor {
	if b, ok := s.batchers[m]; ok {
		return b
	}
	return m
}

// Close releases a set loaded with LoadSet and never put in service (a
// Forecaster closes the sets it serves itself).
func (s *Set) Close() { s.close() }

func (s *Set) close() {
	for _, b := range s.batchers {
		b.Close()
	}
	for _, m := range s.models() {
		m.Close()
	}
	onnx.ReleaseFreedMemory()
}

// models is every loaded model: dense, trees, experts, p_invoke models.
func (s *Set) models() []*onnx.Model {
	var out []*onnx.Model
	for _, m := range append([]*onnx.Model{s.Dense, s.PDense, s.Trees, s.Mean}, s.Quantiles...) {
		if m != nil && !slices.Contains(out, m) { // levels may share a graph
			out = append(out, m)
		}
	}
	for _, m := range s.Experts {
		out = append(out, m)
	}
	for _, m := range s.PExperts {
		out = append(out, m)
	}
	return out
}

func (s *Set) acquire() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.retired {
		return false
	}
	s.refs++
	return true
}

func (s *Set) release() {
	s.mu.Lock()
	s.refs--
	done := s.retired && s.refs == 0 && !s.closed
	s.closed = s.closed || done
	s.mu.Unlock()
	if done {
		s.close()
	}
}

// retire closes the set once the last request using it has finished.
func (s *Set) retire() {
	s.mu.Lock()
	s.retired = true
	done := s.refs == 0 && !s.closed
	s.closed = s.closed || done
	s.mu.Unlock()
	if done {
		s.close()
	}
}

// ServedModel is the model that answers for a route, and its kind.
func (s *Set) ServedModel(rt router.Route) (*onnx.Model, string) {
	if rt.OOD {
		return s.Dense, "dense"
	}
	for _, e := range s.Manifest.Experts {
		if e.Cluster == rt.Cluster && e.Serve == "expert" {
			return s.Experts[e.Cluster], "expert"
		}
	}
	return s.Dense, "dense"
}

// ServedPInvoke is the p_invoke model that answers for a route, and its
// kind: the cluster's where the manifest serves it, else the dense one.
func (s *Set) ServedPInvoke(rt router.Route) (*onnx.Model, string) {
	if !rt.OOD {
		for _, e := range s.Manifest.Experts {
			if e.Cluster == rt.Cluster && e.PInvoke != nil && e.PInvoke.Serve == "expert" {
				return s.PExperts[e.Cluster], "expert"
			}
		}
	}
	return s.PDense, "dense"
}

// Model finds a loaded count model by id ("dense", the trees' or an
// expert's id).
func (s *Set) Model(id string) *onnx.Model {
	if s.Dense.ID == id {
		return s.Dense
	}
	for _, t := range append([]*onnx.Model{s.Trees, s.Mean}, s.Quantiles...) {
		if t != nil && t.ID == id {
			return t
		}
	}
	for _, m := range s.Experts {
		if m.ID == id {
			return m
		}
	}
	return nil
}

// ErrNotReady is returned before the first successful load.
var ErrNotReady = errors.New("forecast: no models loaded")

// Forecaster serves forecasts from the current Set and swaps sets.
type Forecaster struct {
	dir   string
	opts  onnx.Options
	batch Batching
	mu    sync.Mutex // serialises reloads
	cur   *Set
	curM  sync.RWMutex
	// OnRoute, if set, observes every routing decision (metrics, OOD log).
	OnRoute RouteHook
	// SkipTrees serves every set without its count trees (manifest.Trees):
	// config router.count_trees false, for CPU over accuracy. Set it
	// before the first Reload.
	SkipTrees bool
	// SkipUpper serves every set without its expected entry
	// (manifest.Expected): config router.upper_share false, for CPU over
	// the hour's volume. Set it before the first Reload.
	SkipUpper bool
	// SkipTimers serves without the timers' expert (periodic): config
	// router.timers false. Set it before the first Reload.
	SkipTimers bool
	// SkipStop serves every set without its stop model (manifest.Stop):
	// the p_invoke it is fitted on (`mesp stop-decisions`). Set it before
	// the first Reload.
	SkipStop bool
}

// RouteHook observes one routing decision and the kind of model chosen.
// It runs before Forecast returns; counts may be reused after that (the
// server pools request memory), so a hook that keeps them copies them.
type RouteHook func(ctx context.Context, id string, counts []float64, rt router.Route, kind string)

// New makes a Forecaster over a models folder; call Reload to load it.
func New(dir string, o onnx.Options, b Batching) *Forecaster {
	return &Forecaster{dir: dir, opts: o, batch: b}
}

// Dir is the models folder.
func (f *Forecaster) Dir() string { return f.dir }

// Reload loads the folder anew and swaps it in if, and only if, every part
// verifies. Requests in flight finish on the set they started with.
func (f *Forecaster) Reload() (*Set, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := LoadSet(f.dir, f.opts, f.batch)
	if err != nil {
		return nil, err
	}
	if f.SkipTrees {
		s.dropTrees()
	}
	if f.SkipUpper && s.Manifest.Expected != nil {
		// no graph of its own: the quantile graphs stay for the quantiles
		s.Manifest.Expected = nil
		s.catalog = newCatalog(s, s.catalog.Dir)
	}
	if f.SkipStop && s.Manifest.Stop != nil {
		s.Manifest.Stop = nil
		s.catalog = newCatalog(s, s.catalog.Dir)
	}
	s.skipTimers = f.SkipTimers
	f.swap(s)
	return s, nil
}

// dropTrees takes the count trees out of a set before it serves (verified
// at load like every file, then closed): the set as served, its manifest
// and catalog included, has none.
func (s *Set) dropTrees() {
	if s.Trees == nil {
		return
	}
	if b, ok := s.batchers[s.Trees]; ok {
		b.Close()
		delete(s.batchers, s.Trees)
	}
	s.Trees.Close()
	s.Trees = nil
	s.Manifest.Trees = nil
	s.catalog = newCatalog(s, s.catalog.Dir)
}

// swap puts s in service and retires the set it replaces.
func (f *Forecaster) swap(s *Set) {
	f.curM.Lock()
	old := f.cur
	f.cur = s
	f.curM.Unlock()
	if old != nil {
		old.retire()
	}
}

// Current returns the set in service (nil before the first load); the
// caller must not keep it past a reload without Acquire.
func (f *Forecaster) Current() *Set {
	f.curM.RLock()
	defer f.curM.RUnlock()
	return f.cur
}

// Acquire pins the current set for one request; call the returned release.
func (f *Forecaster) Acquire() (*Set, func(), error) {
	for {
		s := f.Current()
		if s == nil {
			return nil, nil, ErrNotReady
		}
		if s.acquire() {
			return s, s.release, nil
		}
	}
}

// Close retires the current set.
func (f *Forecaster) Close() { f.swap(nil) }
