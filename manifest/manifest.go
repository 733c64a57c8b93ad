// Package manifest defines the two files that the Go side and the Python
// training directory share: clusters.json (written by `mesp cluster`, read
// by training and by the router) and manifest.json (written by training,
// read by the server). training/mesp_training/contract.py mirrors it.
package manifest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/mesp-project/mesp/kshape"
	"github.com/mesp-project/mesp/silence"
)

// Version is the format version of both files.
const Version = 1

// Horizon is the number of minutes every model forecasts.
const Horizon = 60

// ONNX graph contract: one float32 input [batch, input_len] of raw counts,
// one float32 output [batch, 60] of non-negative counts.
const (
	InputName  = "counts"
	OutputName = "forecast"
)

// The p_invoke graph contract: the same input name, float32
// [batch, PInvokeInputLen] of raw counts, the most recent minute last and
// minutes not known (a history shorter than a day) set to Missing on the
// left; output float32 [batch, 60]: the probability that the function is
// invoked (count > 0) in each of the next 60 minutes. A graph with trees of
// its own answers its features as a second output, PFeaturesName, float32
// [batch, F]. An expert whose trees continue the dense model's
// (PInvoke.Base) takes no counts: its inputs are the dense graph's features
// (PFeaturesName) and DenseP1InputName, float32 [batch, 1], the dense
// p_invoke model's minute 1, for the same rows: the features are computed
// once per request, however many experts answer.
const (
	PInvokeOutputName = "p_invoke"
	PInvokeInputLen   = 1440
	Missing           = -1
	DenseP1InputName  = "dense_p1"
	PFeaturesName     = "p_features"
)

// Custom metadata keys carried inside every exported ONNX file.
const (
	MetaModelID  = "mesp.model_id"
	MetaInputLen = "mesp.input_len"
	MetaHorizon  = "mesp.horizon"
	MetaFamily   = "mesp.family"
)

// Clusters is clusters.json.
type Clusters struct {
	Version   int     `json:"version"`
	K         int     `json:"k"`
	Seed      int64   `json:"seed"`
	Objective float64 `json:"objective"`
	Length    int     `json:"length"`
	// Transform is applied to raw counts before z-normalisation, at
	// clustering and at routing alike.
	Transform Transform `json:"transform"`
	Clusters  []Cluster `json:"clusters"`
	// Members lists every clustered function with its cluster and SBD.
	Members []Member `json:"members"`
}

// Transform is the representation clustered: log1p, then a centred moving
// average of Smooth minutes. It is kshape's own type, so that clustering,
// clusters.json and the router share one definition.
type Transform = kshape.Transform

// Cluster is one K-Shape cluster.
type Cluster struct {
	ID       int       `json:"id"`
	Size     int       `json:"size"`
	Centroid []float64 `json:"centroid"`
	// Threshold is the SBD that covers 99% of the members; a pattern farther
	// from its nearest centroid than that cluster's threshold is out of
	// distribution.
	Threshold float64 `json:"threshold"`
	// PartialThresholds are the radii for windows shorter than a day, by
	// window length, ascending: a partial window's distance (its best
	// same-length stretch of the centroid) has another spread than a full
	// day's SBD, so each length gets its own 99% radius, calibrated on
	// windows of training functions the router sends to this cluster.
	// Lengths between two entries interpolate; empty: Threshold serves all.
	PartialThresholds []LengthThreshold `json:"partial_thresholds,omitempty"`
	Parquet           string            `json:"parquet"`
}

// LengthThreshold is a cluster's radius for windows of Length minutes.
type LengthThreshold struct {
	Length    int     `json:"length"`
	Threshold float64 `json:"threshold"`
}

// Member is one function's assignment.
type Member struct {
	Function string  `json:"function"`
	Cluster  int     `json:"cluster"`
	Distance float64 `json:"distance"`
}

// Manifest is manifest.json: which ONNX file serves which cluster.
type Manifest struct {
	Version  int    `json:"version"`
	Horizon  int    `json:"horizon"`
	Clusters string `json:"clusters"` // file name of clusters.json, relative
	// ClustersSHA256 pins clusters.json: experts trained on one clustering
	// never serve beside another's centroids.
	ClustersSHA256 string   `json:"clusters_sha256"`
	Dense          Model    `json:"dense"`
	Experts        []Expert `json:"experts"`
	Prewarm        *Prewarm `json:"prewarm,omitempty"`
	Routing        *Routing `json:"routing,omitempty"`
	Trees          *Trees   `json:"trees,omitempty"`
	// Mean is the mean trees: one booster for the next hour's volume
	// (Hour). The served forecast is then the expected count, (1 -
	// Weight) times the served level, the routed and trees-blended median
	// before rounding, plus Weight times their hour spread as the level
	// shapes it, and the median is answered beside it (absent: the
	// forecast is the median, or Expected's).
	Mean *Trees `json:"mean,omitempty"`
	// Silence caps p_invoke after a silence longer than any the pattern
	// shows (`mesp fit-silence`; absent: the models answer alone).
	Silence *Silence `json:"silence,omitempty"`
	// Stop answers the next minute's p_invoke on a platform where
	// functions also stop for good (package silence; `make train-stop`;
	// absent: the models, the timers' floor and the silence cap answer).
	Stop *silence.StopModel `json:"stop,omitempty"`
	// Sparse answers the expected count of small functions from p_invoke
	// (absent: the count models answer it for every function).
	Sparse *Sparse `json:"sparse,omitempty"`
	// Expected derives the expected count of the functions the count
	// models answer from their served quantiles (absent: the level, or
	// the mean trees' blend, is the expected count).
	Expected *Expected `json:"expected,omitempty"`
	// Quantiles are the quantile trees, in increasing order of Q: each
	// minute's count quantiles beside the median (absent: the median is
	// the only quantile served).
	Quantiles []Quantile `json:"quantiles,omitempty"`
}

// Quantile is one served quantile level Q of each minute's count: quantile
// trees (the count trees' recipe fitted to the pinball loss at Fitted; a
// count graph like any other: [batch, 240] and, with DenseFeatures, the
// dense p_invoke features in; 60
// counts out) times Scale. The server answers level Q as the largest of
// the level below it (the median first) and Scale times the largest of
// the median and the graph's answer, so that none ever crosses. Several
// levels may share one graph (`mesp choose-quantiles` calibrates each
// level's Scale on validation functions so that it covers Q of their
// minutes).
type Quantile struct {
	TreesGraph
	Q float64 `json:"q"`
	// Fitted is the pinball level the graph was fitted at (absent: Q).
	Fitted float64 `json:"fitted,omitempty"`
	// Scale multiplies the level's answer (absent: 1).
	Scale float64 `json:"scale,omitempty"`
}

// FittedAt is the pinball level q's graph was fitted at.
func (q Quantile) FittedAt() float64 {
	if q.Fitted > 0 {
		return q.Fitted
	}
	return q.Q
}

// Scales is the factor on q's answer.
func (q Quantile) Scales() float64 {
	if q.Scale > 0 {
		return q.Scale
	}
	return 1
}

// MaxQuantileScale bounds a level's Scale: a calibration that needs more
// than this says the graph does not fit the level.
const MaxQuantileScale = 10

// QuantileName is how outputs, answers and KServe V2 name quantile q:
// "q0.9".
func QuantileName(q float64) string {
	return "q" + strconv.FormatFloat(q, 'g', -1, 64)
}

const minutesPerDay = 1440

// Sparse is the expected count of a function invoked fewer than
// BelowDaily times a day (its history's rate): p_invoke of each minute
// ahead times the mean count of the invoked minutes among its last Look
// minutes. The count models' median of a sparse minute is 0 and their
// level falls short of its mean; a calibrated p_invoke times the size of
// an invocation is the mean (a Poisson rate of 0.3 a minute: p = 0.26,
// 1.16 a minute invoked). Chosen on validation functions by the hour's
// bias and WAPE in each band of daily total.
//
// With Steady, a pattern whose recent minutes one Poisson rate explains
// (package steady) has that rate for its expected count instead: the
// p_invoke models, calibrated on real small functions, fall short of a
// stationary rate.
//
// With HalfLife, an invoked minute's count weighs half as much every
// HalfLife minutes back, so that a level that stepped half an hour ago
// is mostly the new one (a plain mean over two hours forecast a function
// that fell from 10 calls a minute to 1 at 6.5); with Cap, every count is
// first capped at that quantile of the history's invoked minutes' counts,
// so that one burst among hundreds of calls counts as a large call, not
// as the size of every call to come (a burst of 500 on a rate of 0.5 a
// minute had the next hour forecast at 306 calls, 25 came).
type Sparse struct {
	BelowDaily float64 `json:"below_daily"`
	Look       int     `json:"look"`
	Steady     bool    `json:"steady,omitempty"`
	HalfLife   float64 `json:"half_life,omitempty"`
	Cap        float64 `json:"cap,omitempty"`
	ChosenOn   string  `json:"chosen_on,omitempty"`
}

// Expected is the expected count of each minute the quantile trees answer:
// the served level (the median before rounding, blended with the mean
// trees where a set has them) plus Share times how far the served
// Quantile lies above it. A count's median falls short of its mean by as
// much as its distribution leans right: a busy steady function's minute
// is nearly symmetric and its forecast is left nearly as it is, a bursty
// one's upper quantile lies far above its median and its expected count
// is raised with it. One factor on every forecast instead (the mean
// trees' scale before) moved the precise forecasts of the largest
// functions too, which decide the hour's WAPE. `mesp choose-volume` fits
// Share on the validation functions so that the hour's volume of the rows
// it applies to is unbiased.
type Expected struct {
	Quantile float64 `json:"quantile"`
	Share    float64 `json:"share"`
	ChosenOn string  `json:"chosen_on,omitempty"`
}

// sizeScratch pools the invoked counts a capped size sorts.
var sizeScratch = sync.Pool{New: func() any { return new([]float64) }}

// MeanWhenInvoked is the mean count of the invoked minutes among the last
// Look minutes of counts (capped and weighted by recency where the rule
// says so), and whether the rule answers for counts: a daily rate under
// BelowDaily and an invocation in those minutes.
func (sp Sparse) MeanWhenInvoked(counts []float64) (float64, bool) {
	if !sp.Answers(counts) {
		return 0, false
	}
	limit := math.Inf(1)
	if sp.Cap > 0 {
		limit = sp.invokedQuantile(counts)
	}
	recent := counts[max(0, len(counts)-sp.Look):]
	var sum, n float64
	for i, v := range recent {
		if v > 0 {
			w := 1.0
			if sp.HalfLife > 0 {
				w = math.Exp2(-float64(len(recent)-1-i) / sp.HalfLife)
			}
			sum += w * min(v, limit)
			n += w
		}
	}
	return sum / n, true
}

// Answers says whether the rule answers for counts (MeanWhenInvoked's ok,
// without sizing an invocation): a daily rate under BelowDaily and an
// invocation among the last Look minutes.
func (sp Sparse) Answers(counts []float64) bool {
	if len(counts) == 0 {
		return false
	}
	var total float64
	for _, v := range counts {
		total += v
	}
	if total*minutesPerDay/float64(len(counts)) >= sp.BelowDaily {
		return false
	}
	return slices.ContainsFunc(counts[max(0, len(counts)-sp.Look):], func(v float64) bool { return v > 0 })
}

// invokedQuantile is the Cap quantile of the counts of the invoked
// minutes of counts (the smallest count that at least that share of them
// do not exceed).
func (sp Sparse) invokedQuantile(counts []float64) float64 {
	buf := sizeScratch.Get().(*[]float64)
	defer sizeScratch.Put(buf)
	inv := (*buf)[:0]
	for _, v := range counts {
		if v > 0 {
			inv = append(inv, v)
		}
	}
	*buf = inv
	if len(inv) == 0 {
		return math.Inf(1)
	}
	slices.Sort(inv)
	return inv[max(0, int(math.Ceil(sp.Cap*float64(len(inv))))-1)]
}

// Silence is the hazard of an unprecedented idle gap, fitted on the
// training part's fit functions (package silence): from CapFrom idle
// minutes on, a routed p_invoke is at most the hazard of the gap it
// reaches (by how far past the function's longest gap, where the table
// has Past classes); from MinGap on, the mean trees and the sparse rule
// leave the pattern to the level.
type Silence struct {
	silence.Hazard
	MinGap int `json:"min_gap"`
	// CapFrom is the idle minutes from which the hazard caps p_invoke
	// (absent: MinGap).
	CapFrom  int    `json:"cap_from,omitempty"`
	FittedOn string `json:"fitted_on,omitempty"`
}

// CapsFrom is the idle minutes from which the hazard caps p_invoke.
func (sl Silence) CapsFrom() int {
	if sl.CapFrom > 0 {
		return sl.CapFrom
	}
	return sl.MinGap
}

// Trees is the count trees: one gradient-boosted count model (a count
// graph like any other) blended into every routed forecast, (1 - Weight)
// times the routed forecast (soft routing included) plus Weight times the
// trees', out-of-distribution patterns too. The weight is chosen on
// validation functions the trees' early stopping did not read (absent:
// the routed forecast alone).
type Trees struct {
	TreesGraph
	Weight float64 `json:"weight"`
	// Hour (mean trees only) says the graph answers the next hour's
	// volume as even shares per minute, which the server spreads as the
	// served level shapes the hour.
	Hour bool `json:"hour,omitempty"`
	// Scale is the factor older sets put on the mean trees' expected
	// count: refused, as Day is, so that such a set is not served with its
	// volume silently changed (Expected replaces it: `mesp choose-volume`).
	Scale float64 `json:"scale,omitempty"`
}

// TreesGraph is what every trees entry is (the count, mean and quantile
// trees): a count graph that may also read the function's day.
type TreesGraph struct {
	Model
	// Day marks trees of an older layout, which carried a copy of the
	// dense p_invoke graph's feature operations and took the day: refused,
	// with the script that brings them to DenseFeatures (oldTreesLayout).
	Day bool `json:"day,omitempty"`
	// DenseFeatures says the trees take, after the counts, the features
	// the set's dense p_invoke graph answers (PFeaturesName [batch, F]):
	// the graph carries no feature operations, so a function's day
	// features are computed once for every model that reads them. That
	// graph must be the one FeaturesOf names (its sha256), or the trees
	// would read features they were not fitted on.
	DenseFeatures bool `json:"dense_features,omitempty"`
	// FeaturesOf is the dense p_invoke graph whose features the trees were
	// fitted on.
	FeaturesOf *FeaturesOf `json:"features_of,omitempty"`
	// Validation is the validation figures it was chosen on (informational).
	Validation map[string]any `json:"validation,omitempty"`
}

// oldTreesLayout is the advice for trees graphs that carry their own copy
// of the dense p_invoke features.
const oldTreesLayout = "a set written when each trees graph computed the dense p_invoke features itself from the day is brought to the shared-features layout, with the same answers, by scripts/share_dense_features.py --models DIR"

// validateInputs checks what a trees graph says it reads besides the counts.
func (g TreesGraph) validateInputs() error {
	switch {
	case g.Day:
		return fmt.Errorf("manifest: trees %s read the day (an older layout): %s", g.ID, oldTreesLayout)
	case g.DenseFeatures && (g.FeaturesOf == nil || g.FeaturesOf.SHA256 == ""):
		return fmt.Errorf("manifest: trees %s read the dense p_invoke features and do not say of which graph (features_of)", g.ID)
	}
	return nil
}

// TreesGraphs is every trees graph of the set: the count trees, the mean
// trees and each quantile level's (levels may share a graph).
func (m Manifest) TreesGraphs() []TreesGraph {
	var out []TreesGraph
	for _, t := range []*Trees{m.Trees, m.Mean} {
		if t != nil {
			out = append(out, t.TreesGraph)
		}
	}
	for _, q := range m.Quantiles {
		out = append(out, q.TreesGraph)
	}
	return out
}

// FeaturesOf is the graph whose features a model was fitted on.
type FeaturesOf struct {
	Model  string `json:"model"`
	SHA256 string `json:"sha256"`
}

// Routing is soft routing of the count forecasts, chosen on validation
// functions (absent: hard routing, the nearest cluster's model alone).
// Where a pattern lies within the radii of both its nearest clusters, and
// their served count models differ, the forecast is (1 - w) times the
// nearest's plus w times the runner-up's, w = 1 / (1 + exp((d2 - d1) /
// SoftTau)) for distances d1 <= d2, when w is at least MinWeight (each
// blended forecast runs a second model).
type Routing struct {
	SoftTau   float64 `json:"soft_tau"`
	MinWeight float64 `json:"min_weight"`
	// Validation is the validation figures it was chosen on (informational).
	Validation map[string]any `json:"validation,omitempty"`
}

// RunnerWeight is the runner-up's weight for distances d1 <= d2.
func (r Routing) RunnerWeight(d1, d2 float64) float64 {
	return 1 / (1 + math.Exp((d2-d1)/r.SoftTau))
}

// RunnerGap is the most the runner-up's distance can exceed the nearest's
// for its weight to reach MinWeight (+Inf when any weight blends, negative
// when none does), with a hair of slack for rounding: a router need not
// find a runner-up further off.
func (r Routing) RunnerGap() float64 {
	if r.MinWeight <= 0 {
		return math.Inf(1)
	}
	if r.MinWeight > 0.5 {
		return -1
	}
	return r.SoftTau*math.Log(1/r.MinWeight-1) + 1e-9
}

// Model is one exported ONNX graph.
type Model struct {
	ID       string  `json:"id"`
	File     string  `json:"file"`
	SHA256   string  `json:"sha256"`
	Family   string  `json:"family"`
	InputLen int     `json:"input_len"`
	ValMAE   float64 `json:"val_mae"`
	// NaiveValMAE is the naive forecast's MAE on the same validation windows.
	NaiveValMAE float64 `json:"naive_val_mae,omitempty"`
	// Params are the winning hyper-parameters; Data summarises the training
	// and validation data (functions, windows). Informational.
	Params map[string]any `json:"params,omitempty"`
	Data   map[string]int `json:"data,omitempty"`
	// PInvoke is the model's per-minute invocation probabilities (optional:
	// a set without them answers forecasts but not pre-warm decisions).
	PInvoke *PInvoke `json:"p_invoke,omitempty"`
}

// PInvoke is one exported p_invoke graph. An expert's serves only where it
// beat the dense one on the validation windows the router sends it (each
// minute's history 1..m-1, m = 1081..1440, routed as the server routes it),
// in log-loss and in cost at the operating threshold; RoutedVal keeps those
// figures.
type PInvoke struct {
	ID              string         `json:"id"`
	File            string         `json:"file"`
	SHA256          string         `json:"sha256"`
	Family          string         `json:"family"`
	InputLen        int            `json:"input_len"`
	ValLogLoss      float64        `json:"val_logloss"`
	DenseValLogLoss float64        `json:"dense_val_logloss,omitempty"`
	Serve           string         `json:"serve,omitempty"`
	Params          map[string]any `json:"params,omitempty"`
	Data            map[string]int `json:"data,omitempty"`
	RoutedVal       map[string]any `json:"routed_val,omitempty"`
	// Base is the dense p_invoke model's id when an expert's trees continue
	// the dense model's: its graph holds only the trees it added and takes
	// the dense graph's features and minute 1 (PFeaturesName,
	// DenseP1InputName) instead of the counts.
	Base string `json:"base,omitempty"`
}

// Prewarm is the pre-warm policy fixed at training time: warm in a minute
// when p_invoke for it is at least Threshold. Chosen on validation
// functions only (never on evaluation data); the validation figures are
// kept for the record.
type Prewarm struct {
	Threshold                float64 `json:"threshold"`
	ChosenOn                 string  `json:"chosen_on,omitempty"`
	ValColdStarts            int     `json:"val_cold_starts"`
	ValIdleMinutes           int     `json:"val_idle_minutes"`
	ValInvokedMinutes        int     `json:"val_invoked_minutes"`
	ValKeepalive10ColdStarts int     `json:"val_keepalive10_cold_starts"`
	ValKeepalive10Idle       int     `json:"val_keepalive10_idle_minutes"`
	// ValIdleRatioUpper is the 95th percentile, over bootstrap resamples
	// of the validation functions, of idle minutes over keepalive10's.
	ValIdleRatioUpper float64 `json:"val_idle_ratio_upper,omitempty"`
	// ValSilentWarmShare is the share of the silent copies' minutes kept
	// warm (thresholds chosen on the platform mix).
	ValSilentWarmShare float64 `json:"val_silent_warm_share,omitempty"`
}

// Expert is a cluster's model plus the decision whether to serve it.
type Expert struct {
	Model
	Cluster int `json:"cluster"`
	// DenseValMAE is the dense model's validation MAE on this cluster's
	// validation functions; the expert serves only if it is lower.
	DenseValMAE float64 `json:"dense_val_mae"`
	// Serve is "expert" or "dense".
	Serve string `json:"serve"`
}

// Read loads a JSON file of either kind into v.
func Read(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("manifest: %s: %w", path, err)
	}
	return nil
}

// Write stores v as indented JSON atomically and durably (temp file,
// fsync, rename), so a watcher never sees half a file.
func Write(path string, v any) error {
	// written as Python's json.dump writes it: ">=" in a rule's words,
	// not HTML's escape of it
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	b := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	// CreateTemp makes the file 0600; a manifest is read by whoever serves
	// the set (a container's non-root user, another account), as the
	// Python writer leaves it
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("manifest: %w", err)
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("manifest: %w", err)
	}
	// Durable before it is visible: a crash after the rename must not
	// leave an empty file under the real name.
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("manifest: %w", err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("manifest: %w", err)
	}
	return os.Rename(tmp.Name(), path)
}

// ReadManifest loads and validates dir/manifest.json.
func ReadManifest(dir string) (Manifest, error) {
	var m Manifest
	if err := Read(filepath.Join(dir, "manifest.json"), &m); err != nil {
		return m, err
	}
	return m, m.Validate()
}

// Validate checks internal consistency.
func (m Manifest) Validate() error {
	if m.Version != Version {
		return fmt.Errorf("manifest: version %d, want %d", m.Version, Version)
	}
	if m.Horizon != Horizon {
		return fmt.Errorf("manifest: horizon %d, want %d", m.Horizon, Horizon)
	}
	if m.Dense.File == "" {
		return errors.New("manifest: no dense model")
	}
	if err := checkFile("clusters", m.Clusters, m.ClustersSHA256); err != nil {
		return err
	}
	if err := checkFile(m.Dense.ID, m.Dense.File, m.Dense.SHA256); err != nil {
		return err
	}
	if err := m.Dense.PInvoke.validate(m.Dense.ID, false); err != nil {
		return err
	}
	if r := m.Routing; r != nil && !(r.SoftTau > 0 && r.MinWeight >= 0 && r.MinWeight <= 0.5) {
		return fmt.Errorf("manifest: routing soft_tau %v and min_weight %v, want soft_tau > 0 and min_weight in [0, 0.5]", r.SoftTau, r.MinWeight)
	}
	for key, t := range map[string]*Trees{"trees": m.Trees, "mean": m.Mean} {
		if t == nil {
			continue
		}
		if !(t.Weight > 0 && t.Weight <= 1) {
			return fmt.Errorf("manifest: %s weight %v, want a weight in (0, 1]", key, t.Weight)
		}
		if t.InputLen <= 0 {
			return fmt.Errorf("manifest: %s %s: input_len %d", key, t.ID, t.InputLen)
		}
		if err := checkFile(t.ID, t.File, t.SHA256); err != nil {
			return err
		}
		if t.PInvoke != nil {
			return fmt.Errorf("manifest: %s %s: count trees have no p_invoke model", key, t.ID)
		}
		if t.Hour && key != "mean" {
			return fmt.Errorf("manifest: %s %s: only the mean trees answer the hour", key, t.ID)
		}
		if t.Scale != 0 {
			return fmt.Errorf("manifest: %s %s: scale %v is no longer served: `mesp choose-volume` fits the expected entry's share instead", key, t.ID, t.Scale)
		}
	}
	for _, g := range m.TreesGraphs() {
		if err := g.validateInputs(); err != nil {
			return err
		}
	}
	if m.Stop != nil {
		if err := m.Stop.Validate(); err != nil {
			return fmt.Errorf("manifest: %w", err)
		}
	}
	if err := m.validateSilence(); err != nil {
		return err
	}
	if err := m.validateQuantiles(); err != nil {
		return err
	}
	if err := m.validateExpected(); err != nil {
		return err
	}
	if err := m.validateSparse(); err != nil {
		return err
	}
	if m.Prewarm != nil && !(m.Prewarm.Threshold > 0 && m.Prewarm.Threshold < 1) {
		return fmt.Errorf("manifest: prewarm threshold %v, want a probability in (0, 1)", m.Prewarm.Threshold)
	}
	seen := map[int]bool{}
	for _, e := range m.Experts {
		if seen[e.Cluster] {
			return fmt.Errorf("manifest: cluster %d has two experts", e.Cluster)
		}
		seen[e.Cluster] = true
		if e.Serve != "expert" && e.Serve != "dense" {
			return fmt.Errorf("manifest: expert %s: serve %q, want expert or dense", e.ID, e.Serve)
		}
		if e.File == "" || e.InputLen <= 0 {
			return fmt.Errorf("manifest: expert %s: missing file or input_len", e.ID)
		}
		if err := checkFile(e.ID, e.File, e.SHA256); err != nil {
			return err
		}
		if err := e.PInvoke.validate(e.ID, true); err != nil {
			return err
		}
		if e.PInvoke != nil && m.Dense.PInvoke == nil {
			return fmt.Errorf("manifest: expert %s has a p_invoke model but the dense model has none (its fallback)", e.ID)
		}
		if e.PInvoke != nil && e.PInvoke.Base != "" && e.PInvoke.Base != m.Dense.PInvoke.ID {
			return fmt.Errorf("manifest: expert %s: p_invoke continues %q, but the dense p_invoke model is %q", e.ID, e.PInvoke.Base, m.Dense.PInvoke.ID)
		}
	}
	return nil
}

// checkFile refuses a file name that leaves the models folder (absolute,
// "..", a path that is not local) and a missing or malformed sha256: every
// file a manifest names is verified.
func checkFile(owner, name, sum string) error {
	if name == "" || !filepath.IsLocal(name) {
		return fmt.Errorf("manifest: %s: file %q is not a name inside the models folder", owner, name)
	}
	if len(sum) != 64 || strings.Trim(sum, "0123456789abcdef") != "" {
		return fmt.Errorf("manifest: %s: sha256 %q, want 64 lower-case hex digits (every file is verified)", owner, sum)
	}
	return nil
}

// Open reads a file the manifest names, refusing one whose real path
// (symbolic links resolved) leaves dir, and checks its sha256.
func Open(dir, name, sum string) ([]byte, error) {
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	real, err := filepath.EvalSymlinks(filepath.Join(dir, name))
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if rel, err := filepath.Rel(realDir, real); err != nil || !filepath.IsLocal(rel) {
		return nil, fmt.Errorf("manifest: %s resolves to %s, outside the models folder %s", name, real, realDir)
	}
	b, err := os.ReadFile(real)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	got := sha256.Sum256(b)
	if hex.EncodeToString(got[:]) != sum {
		return nil, fmt.Errorf("%w: %s: sha256 %x, manifest says %s", ErrChecksum, name, got, sum)
	}
	return b, nil
}

// ErrChecksum marks a file whose content is not what the manifest pins.
var ErrChecksum = errors.New("manifest: checksum mismatch")

func (p *PInvoke) validate(owner string, expert bool) error {
	if p == nil {
		return nil
	}
	if p.ID == "" {
		return fmt.Errorf("manifest: %s: p_invoke without id", owner)
	}
	if err := checkFile(p.ID, p.File, p.SHA256); err != nil {
		return err
	}
	if p.InputLen != PInvokeInputLen {
		return fmt.Errorf("manifest: %s: p_invoke input_len %d, want %d", owner, p.InputLen, PInvokeInputLen)
	}
	if !expert && p.Base != "" {
		return fmt.Errorf("manifest: %s: the dense p_invoke model cannot continue another (base %q)", owner, p.Base)
	}
	if expert && p.Serve != "expert" && p.Serve != "dense" {
		return fmt.Errorf("manifest: %s: p_invoke serve %q, want expert or dense", owner, p.Serve)
	}
	return nil
}

// ReadClusters loads and validates a clusters.json.
func ReadClusters(path string) (Clusters, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Clusters{}, fmt.Errorf("manifest: %w", err)
	}
	return ParseClusters(path, b)
}

// ParseClusters validates a clusters.json's content (path names it in
// errors).
func ParseClusters(path string, b []byte) (Clusters, error) {
	var c Clusters
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("manifest: %s: %w", path, err)
	}
	if c.Version != Version || len(c.Clusters) == 0 {
		return c, fmt.Errorf("manifest: %s: version %d with %d clusters", path, c.Version, len(c.Clusters))
	}
	for _, cl := range c.Clusters {
		if len(cl.Centroid) != c.Length {
			return c, fmt.Errorf("manifest: %s: cluster %d centroid has %d values, want %d", path, cl.ID, len(cl.Centroid), c.Length)
		}
		for i, lt := range cl.PartialThresholds {
			if lt.Length < 2 || lt.Length >= c.Length || (i > 0 && lt.Length <= cl.PartialThresholds[i-1].Length) ||
				!(lt.Threshold >= 0 && lt.Threshold <= 2) {
				return c, fmt.Errorf("manifest: %s: cluster %d partial threshold %d (%d minutes, %v): want ascending lengths in 2..%d and a distance in [0, 2]",
					path, cl.ID, i, lt.Length, lt.Threshold, c.Length-1)
			}
		}
	}
	return c, nil
}

// PinClusters records the current sha256 of the clusters file that dir's
// manifest.json names, leaving every other field as it is. It is for a
// change that keeps centroids and members (recalibrated radii), after
// which the experts still match the clustering.
func PinClusters(dir string) error {
	path := filepath.Join(dir, "manifest.json")
	var raw map[string]json.RawMessage
	if err := Read(path, &raw); err != nil {
		return err
	}
	var name string
	if err := json.Unmarshal(raw["clusters"], &name); err != nil || !filepath.IsLocal(name) {
		return fmt.Errorf("manifest: %s: clusters %q is not a file name in the folder", path, raw["clusters"])
	}
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	sum := sha256.Sum256(b)
	raw["clusters_sha256"], _ = json.Marshal(hex.EncodeToString(sum[:]))
	return Write(path, raw)
}

// validateQuantiles wants levels in (0.5, 1) in increasing order (the
// median is 0.5), each a count graph (one graph may serve several levels)
// with a scale within bounds.
func (m Manifest) validateQuantiles() error {
	prev := 0.5
	for _, q := range m.Quantiles {
		if !(q.Q > prev && q.Q < 1) {
			return fmt.Errorf("manifest: quantiles: %s at %v, want increasing levels in (0.5, 1)", q.ID, q.Q)
		}
		prev = q.Q
		if q.Scale < 0 || q.Scale > MaxQuantileScale || math.IsNaN(q.Scale) {
			return fmt.Errorf("manifest: quantiles: %s at %v: scale %v, want none or a factor in (0, %v]", q.ID, q.Q, q.Scale, MaxQuantileScale)
		}
		if q.Fitted != 0 && !(q.Fitted > 0.5 && q.Fitted < 1) {
			return fmt.Errorf("manifest: quantiles: %s at %v: fitted at %v, want a level in (0.5, 1)", q.ID, q.Q, q.Fitted)
		}
		if q.InputLen <= 0 {
			return fmt.Errorf("manifest: quantiles: %s: input_len %d", q.ID, q.InputLen)
		}
		if q.PInvoke != nil {
			return fmt.Errorf("manifest: quantiles: %s: quantile trees have no p_invoke model", q.ID)
		}
		if err := checkFile(q.ID, q.File, q.SHA256); err != nil {
			return err
		}
	}
	return nil
}

// Level is the index of quantile level q among the served Quantiles; -1
// when the set does not serve it.
func (m Manifest) Level(q float64) int {
	return slices.IndexFunc(m.Quantiles, func(l Quantile) bool { return l.Q == q })
}

func (m Manifest) validateExpected() error {
	e := m.Expected
	if e == nil {
		return nil
	}
	if !(e.Share >= 0 && e.Share <= 1) {
		return fmt.Errorf("manifest: expected share %v, want a share in [0, 1]", e.Share)
	}
	if m.Level(e.Quantile) < 0 {
		return fmt.Errorf("manifest: expected quantile %v, want one of the levels the set serves", e.Quantile)
	}
	return nil
}

func (m Manifest) validateSparse() error {
	sp := m.Sparse
	if sp == nil {
		return nil
	}
	if !(sp.BelowDaily > 0) || sp.Look < 1 {
		return fmt.Errorf("manifest: sparse below_daily %v and look %d, want a positive daily total and at least 1 minute", sp.BelowDaily, sp.Look)
	}
	if !(sp.HalfLife >= 0) || math.IsInf(sp.HalfLife, 0) || !(sp.Cap >= 0 && sp.Cap <= 1) {
		return fmt.Errorf("manifest: sparse half_life %v and cap %v, want none or a positive number of minutes, and none or a quantile in (0, 1]", sp.HalfLife, sp.Cap)
	}
	return nil
}

func (m Manifest) validateSilence() error {
	sl := m.Silence
	if sl == nil {
		return nil
	}
	if err := sl.Validate(); err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	if sl.MinGap < 1 {
		return fmt.Errorf("manifest: silence min_gap %d, want at least 1 minute", sl.MinGap)
	}
	if sl.CapFrom < 0 {
		return fmt.Errorf("manifest: silence cap_from %d, want at least 1 minute (or absent)", sl.CapFrom)
	}
	return nil
}
