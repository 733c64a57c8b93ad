package onnx

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"time"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/mesp-project/mesp/manifest"
)

// Model is one loaded forecaster: raw counts [n, InputLen] in, counts
// [n, Horizon] out. Safe for concurrent use (DynamicAdvancedSession).
type Model struct {
	ID     string
	Path   string
	SHA256 string
	// InputLen is the minutes of history the model reads (its manifest
	// entry's input_len).
	InputLen int
	Horizon  int
	Family   string
	// Output is the graph's output: manifest.OutputName (counts) or
	// manifest.PInvokeOutputName (probabilities).
	Output string
	// DenseP1 says the graph is an expert whose trees continue the dense
	// p_invoke model's: it takes that model's features (InWidth values per
	// row) and minute 1 (one value per row, manifest.DenseP1InputName)
	// instead of counts.
	DenseP1 bool
	// TakesFeatures says the graph is a count model that reads, after its
	// InputLen counts, the dense p_invoke graph's features of the day
	// (SecondWidth = that graph's Features values per row,
	// manifest.PFeaturesName).
	TakesFeatures bool
	// InWidth is the values per row of the first input: InputLen counts, or
	// the dense p_invoke graph's features for DenseP1.
	InWidth int
	// SecondWidth is the values per row of the second input: 1 (the dense
	// p_invoke graph's minute 1) for DenseP1, the dense graph's features
	// for TakesFeatures, 0 for a graph with one input.
	SecondWidth int
	// Features is the width of the graph's features answered after each
	// row's Horizon outputs (Expect.Features), 0 when not asked for.
	Features int
	sess     *ort.DynamicAdvancedSession
	// maxRowsPerRun splits larger calls (Options.MaxRowsPerRun).
	maxRowsPerRun int
	stats         *RunStats
}

// Width is the values per row of an answer: Horizon outputs, then the
// features when asked for.
func (m *Model) Width() int { return m.Horizon + m.Features }

// oldLayout is the advice for p_invoke graphs written before the experts
// took the dense graph's features.
const oldLayout = "a set written before the dense graph shared its features is brought to this layout, with the same answers, by scripts/refeature_pinvoke.py --models DIR"

// ErrMismatch marks a file that loads but does not match what was expected.
var ErrMismatch = errors.New("onnx: model does not match its manifest entry")

// Expect is what the manifest says a file must be.
type Expect struct {
	ID       string
	SHA256   string // empty: not checked
	InputLen int
	Horizon  int
	// Output is the output's name; empty means manifest.OutputName. A
	// p_invoke graph (manifest.PInvokeOutputName) must answer in [0, 1].
	Output string
	// DenseP1: the graph must take manifest.PFeaturesName [batch,
	// FeaturesIn] and manifest.DenseP1InputName [batch, 1] instead of
	// counts (an expert whose trees continue the dense model's).
	// FeaturesIn is the dense graph's features per row (DenseP1 and
	// TakesFeatures).
	DenseP1    bool
	FeaturesIn int
	// TakesFeatures: the graph must take the counts and then the dense
	// p_invoke graph's features (manifest.PFeaturesName [batch,
	// FeaturesIn]): count trees fed the features that graph computes.
	TakesFeatures bool
	// Features: the graph must answer its features (manifest.PFeaturesName,
	// [batch, F]) as a second output; answers then carry them after each
	// row's outputs (Model.Width).
	Features bool
}

func (e Expect) output() string {
	if e.Output == "" {
		return manifest.OutputName
	}
	return e.Output
}

// Load reads, verifies and opens a model: the file's sha256, its single
// float32 input/output with the contract's names and shapes, and its
// custom metadata (model id, input length, horizon), then one test
// inference that must give finite, non-negative values.
func Load(path string, want Expect, o Options) (*Model, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("onnx: %w", err)
	}
	return LoadBytes(path, data, want, o)
}

// LoadBytes is Load on a file's content already read (path names it in
// errors).
func LoadBytes(path string, data []byte, want Expect, o Options) (*Model, error) {
	sum := sha256.Sum256(data)
	digest := hex.EncodeToString(sum[:])
	if want.SHA256 != "" && want.SHA256 != digest {
		return nil, fmt.Errorf("%w: %s: sha256 %s, manifest says %s", ErrMismatch, path, digest, want.SHA256)
	}
	ins, outs, err := ort.GetInputOutputInfoWithONNXData(data)
	if err != nil {
		return nil, fmt.Errorf("onnx: %s: not a loadable ONNX model: %w", path, err)
	}
	inNames, inWidth, secondWidth := []string{manifest.InputName}, want.InputLen, 0
	switch {
	case want.DenseP1:
		if len(ins) != 2 || ins[0].Name != manifest.PFeaturesName {
			return nil, fmt.Errorf("%w: %s: inputs %v, want %s and %s (its manifest entry continues the dense p_invoke model; %s)", ErrMismatch, path, ins, manifest.PFeaturesName, manifest.DenseP1InputName, oldLayout)
		}
		if err := checkIO(ins[1:], manifest.DenseP1InputName, 1); err != nil {
			return nil, fmt.Errorf("%w: %s: input: %v", ErrMismatch, path, err)
		}
		ins, inWidth, secondWidth = ins[:1], want.FeaturesIn, 1
		inNames = []string{manifest.PFeaturesName, manifest.DenseP1InputName}
	case want.TakesFeatures:
		if len(ins) != 2 {
			return nil, fmt.Errorf("%w: %s: inputs %v, want %s and %s (its manifest entry reads the dense p_invoke features)", ErrMismatch, path, ins, manifest.InputName, manifest.PFeaturesName)
		}
		if err := checkIO(ins[1:], manifest.PFeaturesName, want.FeaturesIn); err != nil {
			return nil, fmt.Errorf("%w: %s: input: %v (the dense p_invoke features)", ErrMismatch, path, err)
		}
		ins, secondWidth = ins[:1], want.FeaturesIn
		inNames = []string{manifest.InputName, manifest.PFeaturesName}
	}
	if err := checkIO(ins, inNames[0], inWidth); err != nil {
		return nil, fmt.Errorf("%w: %s: input: %v", ErrMismatch, path, err)
	}
	outNames, features := []string{want.output()}, 0
	switch {
	case want.Features:
		if len(outs) != 2 || len(outs[1].Dimensions) != 2 || outs[1].Dimensions[1] < 1 {
			return nil, fmt.Errorf("%w: %s: outputs %v, want %s and its features %s [batch, F] (experts continue this model; %s)", ErrMismatch, path, outs, want.output(), manifest.PFeaturesName, oldLayout)
		}
		features = int(outs[1].Dimensions[1])
		if err := checkIO(outs[1:], manifest.PFeaturesName, features); err != nil {
			return nil, fmt.Errorf("%w: %s: output: %v", ErrMismatch, path, err)
		}
		outs, outNames = outs[:1], append(outNames, manifest.PFeaturesName)
	case len(outs) == 2 && outs[1].Name == manifest.PFeaturesName:
		outs = outs[:1] // features no one asked for: not run out of the graph
	}
	if err := checkIO(outs, want.output(), want.Horizon); err != nil {
		return nil, fmt.Errorf("%w: %s: output: %v", ErrMismatch, path, err)
	}
	meta, err := ort.GetModelMetadataWithONNXData(data)
	if err != nil {
		return nil, fmt.Errorf("onnx: %s: metadata: %w", path, err)
	}
	family, err := checkMeta(meta, want)
	meta.Destroy()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMismatch, path, err)
	}
	so, err := sessionOptions(o)
	if err != nil {
		return nil, err
	}
	defer so.Destroy()
	sess, err := ort.NewDynamicAdvancedSessionWithONNXData(data, inNames, outNames, so)
	if err != nil {
		return nil, fmt.Errorf("onnx: %s: session: %w", path, err)
	}
	m := &Model{ID: want.ID, Path: path, SHA256: digest, InputLen: want.InputLen, Horizon: want.Horizon,
		Family: family, Output: want.output(), DenseP1: want.DenseP1, TakesFeatures: want.TakesFeatures,
		InWidth: inWidth, SecondWidth: secondWidth, Features: features, sess: sess, maxRowsPerRun: o.MaxRowsPerRun, stats: o.Stats}
	if err := m.selfTest(); err != nil {
		m.Close()
		return nil, fmt.Errorf("%w: %s: test inference: %v", ErrMismatch, path, err)
	}
	return m, nil
}

func checkIO(infos []ort.InputOutputInfo, name string, width int) error {
	if len(infos) != 1 {
		return fmt.Errorf("%d tensors, want 1", len(infos))
	}
	io := infos[0]
	if io.Name != name || io.DataType != ort.TensorElementDataTypeFloat {
		return fmt.Errorf("%s, want float32 tensor %q", io.String(), name)
	}
	d := io.Dimensions
	if len(d) != 2 || d[0] != -1 || d[1] != int64(width) {
		return fmt.Errorf("shape %v, want [batch, %d] with a dynamic batch axis", d, width)
	}
	return nil
}

func checkMeta(meta *ort.ModelMetadata, want Expect) (family string, err error) {
	get := func(key string) (string, error) {
		v, ok, err := meta.LookupCustomMetadataMap(key)
		if err != nil || !ok {
			return "", fmt.Errorf("metadata %q missing", key)
		}
		return v, nil
	}
	id, err := get(manifest.MetaModelID)
	if err != nil {
		return "", err
	}
	if want.ID != "" && id != want.ID {
		return "", fmt.Errorf("model id %q, manifest says %q", id, want.ID)
	}
	for key, n := range map[string]int{manifest.MetaInputLen: want.InputLen, manifest.MetaHorizon: want.Horizon} {
		v, err := get(key)
		if err != nil {
			return "", err
		}
		if got, err := strconv.Atoi(v); err != nil || got != n {
			return "", fmt.Errorf("metadata %s=%q, manifest says %d", key, v, n)
		}
	}
	family, _ = get(manifest.MetaFamily)
	return family, nil
}

// selfTest runs one ramp input (and a second input of halves) and checks
// the output is finite and >= 0 (and at most 1 for probabilities), and the
// features finite.
func (m *Model) selfTest() error {
	in := make([]float32, m.InWidth)
	for i := range in {
		in[i] = float32(i % 7)
	}
	var second []float32
	for range m.SecondWidth {
		second = append(second, 0.5)
	}
	out, err := m.PredictDense(context.Background(), in, second, 1)
	if err != nil {
		return err
	}
	for i, v := range out {
		bad := math.IsNaN(float64(v)) || math.IsInf(float64(v), 0)
		if i < m.Horizon {
			bad = bad || v < 0 || (m.Output == manifest.PInvokeOutputName && v > 1)
		}
		if bad {
			return fmt.Errorf("output %d is %v", i, v)
		}
	}
	return nil
}

// Predict runs n rows of InputLen raw counts and returns n*Horizon counts.
func (m *Model) Predict(ctx context.Context, in []float32, n int) ([]float32, error) {
	return m.PredictDense(ctx, in, nil, n)
}

// PredictDense runs n rows of InWidth values with n rows of the second
// input's SecondWidth values (for a DenseP1 model, the dense p_invoke
// graph's features and its minute 1; for TakesDay, the counts and the day;
// nil for a graph with one input) and returns n rows of Width values.
func (m *Model) PredictDense(ctx context.Context, in, dense []float32, n int) ([]float32, error) {
	if n <= 0 || len(in) != n*m.InWidth {
		return nil, fmt.Errorf("onnx: %s: %d values for %d rows of %d", m.ID, len(in), n, m.InWidth)
	}
	if want := n * m.SecondWidth; len(dense) != want {
		return nil, fmt.Errorf("onnx: %s: %d values of the second input for %d rows, want %d", m.ID, len(dense), n, want)
	}
	// The outputs are written in place into one buffer for all rows, run
	// after run (the tensors wrap Go slices).
	out := make([]float32, n*m.Horizon)
	var feats []float32
	if m.Features > 0 {
		feats = make([]float32, n*m.Features)
	}
	step := n
	if m.maxRowsPerRun > 0 {
		step = min(n, m.maxRowsPerRun)
	}
	for lo := 0; lo < n; lo += step {
		if err := ctx.Err(); err != nil {
			return nil, err // a caller gone stops its remaining runs
		}
		hi := min(n, lo+step)
		var sec, f []float32
		if m.SecondWidth > 0 {
			sec = dense[lo*m.SecondWidth : hi*m.SecondWidth]
		}
		if m.Features > 0 {
			f = feats[lo*m.Features : hi*m.Features]
		}
		if err := m.run(in[lo*m.InWidth:hi*m.InWidth], sec, out[lo*m.Horizon:hi*m.Horizon], f, hi-lo); err != nil {
			return nil, err
		}
	}
	if m.Features == 0 {
		return out, nil
	}
	// One row per function, its outputs then its features, so that a
	// batched call can hand each caller its rows as one slice.
	rows := make([]float32, 0, n*m.Width())
	for r := range n {
		rows = append(rows, out[r*m.Horizon:(r+1)*m.Horizon]...)
		rows = append(rows, feats[r*m.Features:(r+1)*m.Features]...)
	}
	return rows, nil
}

// run is one ONNX Runtime run of n rows into out (and feats, for a graph
// with features).
func (m *Model) run(in, dense, out, feats []float32, n int) error {
	x, err := ort.NewTensor(ort.NewShape(int64(n), int64(m.InWidth)), in)
	if err != nil {
		return fmt.Errorf("onnx: input tensor: %w", err)
	}
	defer x.Destroy()
	inputs := []ort.Value{x}
	if m.SecondWidth > 0 {
		d, err := ort.NewTensor(ort.NewShape(int64(n), int64(m.SecondWidth)), dense)
		if err != nil {
			return fmt.Errorf("onnx: input tensor: %w", err)
		}
		defer d.Destroy()
		inputs = append(inputs, d)
	}
	y, err := ort.NewTensor(ort.NewShape(int64(n), int64(m.Horizon)), out)
	if err != nil {
		return fmt.Errorf("onnx: output tensor: %w", err)
	}
	defer y.Destroy()
	outputs := []ort.Value{y}
	if m.Features > 0 {
		f, err := ort.NewTensor(ort.NewShape(int64(n), int64(m.Features)), feats)
		if err != nil {
			return fmt.Errorf("onnx: output tensor: %w", err)
		}
		defer f.Destroy()
		outputs = append(outputs, f)
	}
	start := time.Now()
	err = m.sess.Run(inputs, outputs)
	if m.stats != nil {
		m.stats.add(m.ID, n, time.Since(start))
	}
	if err != nil {
		return fmt.Errorf("onnx: %s: run: %w", m.ID, err)
	}
	return nil
}

// Close releases the session. Callers make sure no Predict is running.
func (m *Model) Close() error {
	if m.sess == nil {
		return nil
	}
	err := m.sess.Destroy()
	m.sess = nil
	return err
}
