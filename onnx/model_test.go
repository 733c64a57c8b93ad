package onnx

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mesp-project/mesp/config"
	"github.com/mesp-project/mesp/internal/fixture"
	"github.com/mesp-project/mesp/manifest"
	"github.com/prometheus/client_golang/prometheus"
)

func setup(t *testing.T) (manifest.Manifest, string) {
	t.Helper()
	if _, err := Init(config.ORT{}.ORTLibrary()); err != nil {
		t.Fatalf("ONNX Runtime: %v (run scripts/setup-ort.sh)", err)
	}
	dir := fixture.Models()
	m, err := manifest.ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	return m, dir
}

func expect(e manifest.Model) Expect {
	return Expect{ID: e.ID, SHA256: e.SHA256, InputLen: e.InputLen, Horizon: manifest.Horizon}
}

func TestLoadAndPredictBatches(t *testing.T) {
	m, mod := loadDense(t)
	if mod.Family != m.Dense.Family {
		t.Errorf("family from metadata %q, manifest %q", mod.Family, m.Dense.Family)
	}
	L := mod.InputLen
	one := make([]float32, L)
	for i := range one {
		one[i] = float32(5 + i%3)
	}
	single, err := mod.Predict(context.Background(), one, 1)
	if err != nil {
		t.Fatal(err)
	}
	// The same row inside a batch of 5 gives the same answer.
	batch := make([]float32, 0, 5*L)
	for r := range 5 {
		for i := range L {
			batch = append(batch, float32(r*(i%7)))
		}
	}
	copy(batch[3*L:], one)
	out, err := mod.Predict(context.Background(), batch, 5)
	if err != nil {
		t.Fatal(err)
	}
	for h := range manifest.Horizon {
		if math.Abs(float64(out[3*manifest.Horizon+h]-single[h])) > 1e-4*math.Max(1, float64(single[h])) {
			t.Fatalf("batched row differs at %d: %v vs %v", h, out[3*manifest.Horizon+h], single[h])
		}
		if single[h] < 0 {
			t.Fatalf("negative forecast %v", single[h])
		}
	}
	if _, err := mod.Predict(context.Background(), one[:L-1], 1); err == nil {
		t.Error("a short row must be refused")
	}
}

// TestExpertTakesTheDenseFeatures: the dense p_invoke graph answers the
// same probabilities with its features as without, an expert that
// continues its trees reads exactly those features, and the expert's
// minute 1 continues the dense one (a higher dense minute 1 on the same
// features never lowers it).
func TestExpertTakesTheDenseFeatures(t *testing.T) {
	m, dir := setup(t)
	expert, dense := loadContinuingExpert(t)
	p := m.Dense.PInvoke
	plain, err := Load(filepath.Join(dir, p.File), Expect{ID: p.ID, SHA256: p.SHA256, InputLen: p.InputLen,
		Horizon: manifest.Horizon, Output: manifest.PInvokeOutputName}, Options{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if plain.Features != 0 || plain.Width() != manifest.Horizon || dense.Features != expert.InWidth || dense.Features == 0 {
		t.Fatalf("widths: plain %d, with features %d (+%d), expert takes %d", plain.Width(), dense.Width(), dense.Features, expert.InWidth)
	}
	rows := fixture.Rows(t)[:16]
	var in []float32
	for _, f := range rows {
		for _, v := range f.Counts[len(f.Counts)-dense.InWidth:] {
			in = append(in, float32(v))
		}
	}
	want, err := plain.Predict(context.Background(), in, len(rows))
	if err != nil {
		t.Fatal(err)
	}
	probs, features, _ := denseRows(t, dense, in, len(rows))
	for r, row := range probs {
		if !slices.Equal(row, want[r*manifest.Horizon:(r+1)*manifest.Horizon]) {
			t.Fatalf("row %d: the graph answers other probabilities beside its features", r)
		}
	}
	for r, f := range features {
		var last float32 = -1
		for _, d := range []float32{0.01, 0.2, 0.5, 0.9} {
			y, err := expert.PredictDense(context.Background(), f, []float32{d}, 1)
			if err != nil {
				t.Fatal(err)
			}
			if y[0] < last || y[0] < 0 || y[0] > 1 {
				t.Fatalf("row %d: dense minute 1 %v gives the expert's %v after %v", r, d, y[0], last)
			}
			last = y[0]
		}
	}
}

func TestLoadRefusesBadFiles(t *testing.T) {
	m, dir := setup(t)
	good := filepath.Join(dir, m.Dense.File)
	raw, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	corrupt := filepath.Join(tmp, "corrupt.onnx")
	os.WriteFile(corrupt, raw[:len(raw)/3], 0o644)
	garbage := filepath.Join(tmp, "garbage.onnx")
	os.WriteFile(garbage, []byte("this is not a model"), 0o644)
	wrongLen := expect(m.Dense)
	wrongLen.InputLen++
	wrongID := expect(m.Dense)
	wrongID.ID = "cluster-99"
	wrongSum := expect(m.Dense)
	wrongSum.SHA256 = "00"
	noSum := func(e Expect) Expect { e.SHA256 = ""; return e }
	takesDense := expect(m.Dense)
	takesDense.DenseP1 = true
	var expertFile string
	var plain, wrongWidth Expect
	for _, e := range m.Experts {
		if p := e.PInvoke; p != nil && p.Base != "" {
			expertFile = filepath.Join(dir, p.File)
			plain = Expect{ID: p.ID, SHA256: p.SHA256, InputLen: p.InputLen, Horizon: manifest.Horizon, Output: manifest.PInvokeOutputName}
			wrongWidth = continuing(p, loadPDense(t, m, dir).Features+1)
		}
	}
	countsWithFeatures := expect(m.Dense)
	countsWithFeatures.Features = true
	cases := []struct {
		name     string
		path     string
		want     Expect
		mismatch bool
		hint     string // in the message, when set
	}{
		{"truncated file", corrupt, noSum(expect(m.Dense)), false, ""},
		{"not ONNX", garbage, noSum(expect(m.Dense)), false, ""},
		{"missing file", filepath.Join(tmp, "nope.onnx"), expect(m.Dense), false, ""},
		{"wrong input length", good, wrongLen, true, ""},
		{"wrong model id", good, wrongID, true, ""},
		{"wrong sha256", good, wrongSum, true, ""},
		{"count model expected to take dense_p1", good, takesDense, true, ""},
		{"expert taking the dense features expected to take counts", expertFile, plain, true, ""},
		{"expert taking fewer features than the dense graph answers", expertFile, wrongWidth, true, ""},
		// a dense graph of the older layout (before p_features) has no features output
		{"count model expected to answer features", good, countsWithFeatures, true, "refeature_pinvoke.py"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mod, err := Load(tc.path, tc.want, Options{})
			if err == nil {
				mod.Close()
				t.Fatal("loaded; want an error")
			}
			if tc.mismatch && !errors.Is(err, ErrMismatch) {
				t.Fatalf("err %v, want ErrMismatch", err)
			}
			if !strings.Contains(err.Error(), tc.hint) {
				t.Fatalf("err %v, want the advice %q", err, tc.hint)
			}
		})
	}
}

func TestCUDAOnCPUBuildIsAClearError(t *testing.T) {
	m, dir := setup(t)
	_, err := Load(filepath.Join(dir, m.Dense.File), expect(m.Dense), Options{Provider: "cuda"})
	if !errors.Is(err, ErrNoCUDA) {
		t.Fatalf("err %v, want ErrNoCUDA on the CPU library", err)
	}
}

// TestBatcherMatchesDirectUnderConcurrency: merged calls answer each
// caller its own rows, for a count model, for the dense p_invoke graph
// answering its features beside its probabilities, and for a p_invoke
// expert that takes the dense model's features and minute 1.
func TestBatcherMatchesDirectUnderConcurrency(t *testing.T) {
	_, dense := loadDense(t)
	expert, pdense := loadContinuingExpert(t)
	for _, mod := range []*Model{dense, pdense, expert} {
		t.Run(mod.ID, func(t *testing.T) { batcherMatchesDirect(t, mod) })
	}
}

func batcherMatchesDirect(t *testing.T, mod *Model) {
	b := NewBatcher(mod, 2*time.Millisecond, 32)
	defer b.Close()
	const callers = 24
	inputs := make([][]float32, callers)
	denseP1 := make([][]float32, callers)
	want := make([][]float32, callers)
	for c := range callers {
		inputs[c] = make([]float32, mod.InWidth)
		for i := range inputs[c] {
			inputs[c][i] = float32((c*31 + i) % 11)
		}
		if mod.DenseP1 {
			denseP1[c] = []float32{float32(c+1) / (callers + 2)}
		}
		var err error
		if want[c], err = mod.PredictDense(context.Background(), inputs[c], denseP1[c], 1); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := b.PredictDense(context.Background(), inputs[c], denseP1[c], 1)
			if err != nil {
				errs <- err
				return
			}
			if len(got) != mod.Width() {
				errs <- fmt.Errorf("caller %d: %d values, want %d", c, len(got), mod.Width())
				return
			}
			for h := range got {
				if math.Abs(float64(got[h]-want[c][h])) > 1e-4*math.Max(1, float64(want[c][h])) {
					errs <- fmt.Errorf("caller %d minute %d: %v vs %v", c, h, got[h], want[c][h])
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestBatcherRunsLoneCallAtOnce: with nothing else in flight a call does
// not wait for company, however long the configured wait.
func TestBatcherRunsLoneCallAtOnce(t *testing.T) {
	_, mod := loadDense(t)
	b := NewBatcher(mod, time.Hour, 32)
	defer b.Close()
	done := make(chan error, 1)
	go func() {
		_, err := b.Predict(context.Background(), make([]float32, mod.InputLen), 1)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("a lone call waited for company on an idle model")
	}
}

// loadContinuingExpert loads the first shipped p_invoke expert whose trees
// continue the dense model's (it takes the dense graph's features and
// minute 1), and the dense p_invoke graph answering its features.
func loadContinuingExpert(t *testing.T) (expert, dense *Model) {
	t.Helper()
	m, dir := setup(t)
	dense = loadPDense(t, m, dir)
	for _, e := range m.Experts {
		if p := e.PInvoke; p != nil && p.Base != "" {
			mod, err := Load(filepath.Join(dir, p.File), continuing(p, dense.Features), Options{IntraOpThreads: 1})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { mod.Close() })
			return mod, dense
		}
	}
	t.Fatal("no shipped p_invoke expert continues the dense trees")
	return nil, nil
}

// continuing is what an expert that continues the dense trees must be.
func continuing(p *manifest.PInvoke, features int) Expect {
	return Expect{ID: p.ID, SHA256: p.SHA256, InputLen: p.InputLen, Horizon: manifest.Horizon,
		Output: manifest.PInvokeOutputName, DenseP1: true, FeaturesIn: features}
}

// loadPDense loads the shipped dense p_invoke graph answering its features.
func loadPDense(t *testing.T, m manifest.Manifest, dir string) *Model {
	t.Helper()
	p := m.Dense.PInvoke
	mod, err := Load(filepath.Join(dir, p.File), Expect{ID: p.ID, SHA256: p.SHA256, InputLen: p.InputLen,
		Horizon: manifest.Horizon, Output: manifest.PInvokeOutputName, Features: true}, Options{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mod.Close() })
	return mod
}

// denseRows runs the dense p_invoke graph (with features) over n rows of
// counts and splits its answer: each row's p_invoke, features, minute 1.
func denseRows(t *testing.T, dense *Model, in []float32, n int) (p, features [][]float32, p1 []float32) {
	t.Helper()
	y, err := dense.Predict(context.Background(), in, n)
	if err != nil {
		t.Fatal(err)
	}
	w := dense.Width()
	for r := range n {
		row := y[r*w : (r+1)*w]
		p, features, p1 = append(p, row[:dense.Horizon]), append(features, row[dense.Horizon:]), append(p1, row[0])
	}
	return p, features, p1
}

// loadDense loads the shipped dense model on one intra-op thread, closed
// when the test ends.
func loadDense(t *testing.T) (manifest.Manifest, *Model) {
	t.Helper()
	m, dir := setup(t)
	mod, err := Load(filepath.Join(dir, m.Dense.File), expect(m.Dense), Options{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mod.Close() })
	return m, mod
}

// TestSplitRunsAnswerAsOneRun: a call split into runs of at most
// MaxRowsPerRun rows (10 rows in runs of 3, 3, 3 and 1) answers what one
// run answers, row for row, for a graph of one input, one with features
// and one with a second input.
func TestSplitRunsAnswerAsOneRun(t *testing.T) {
	m, dir := setup(t)
	p := m.Dense.PInvoke
	pDense := Expect{ID: p.ID, SHA256: p.SHA256, InputLen: p.InputLen, Horizon: manifest.Horizon, Output: manifest.PInvokeOutputName, Features: true}
	expert, dense := loadContinuingExpert(t)
	const n = 10
	rows := fixture.Rows(t)[:n]
	counts := func(width int) []float32 {
		var in []float32
		for _, f := range rows {
			for _, v := range f.Counts[len(f.Counts)-width:] {
				in = append(in, float32(v))
			}
		}
		return in
	}
	_, features, p1 := denseRows(t, dense, counts(dense.InWidth), n)
	cases := []struct {
		name    string
		path    string
		want    Expect
		in, sec []float32
	}{
		{"count model", filepath.Join(dir, m.Dense.File), expect(m.Dense), counts(m.Dense.InputLen), nil},
		{"dense p_invoke with its features", filepath.Join(dir, p.File), pDense, counts(p.InputLen), nil},
		{"expert with a second input", expert.Path, continuingExpect(t, m, expert.ID, dense.Features), slices.Concat(features...), p1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var answers [2][]float32
			stats := NewRunStats()
			for k, per := range []int{0, 3} {
				mod, err := Load(tc.path, tc.want, Options{IntraOpThreads: 1, MaxRowsPerRun: per, Stats: stats})
				if err != nil {
					t.Fatal(err)
				}
				answers[k], err = mod.PredictDense(context.Background(), tc.in, tc.sec, n)
				mod.Close()
				if err != nil {
					t.Fatal(err)
				}
			}
			// each Load checks its graph with a run of one row; then one run
			// of 10 rows, and four of 3, 3, 3 and 1
			st := stats.Snapshot()[tc.want.ID]
			if st.Runs != 7 || st.Rows != 2*n+2 || !(st.Seconds > 0) {
				t.Errorf("run stats %+v, want 7 runs of %d rows in all and some seconds", st, 2*n+2)
			}
			reg := prometheus.NewPedanticRegistry()
			reg.MustRegister(stats)
			families, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]float64{"mesp_model_runs_total": 7, "mesp_model_rows_total": 2*n + 2, "mesp_model_run_seconds_total": st.Seconds}
			for _, f := range families {
				if m := f.GetMetric(); len(m) != 1 || m[0].GetCounter().GetValue() != want[f.GetName()] || m[0].GetLabel()[0].GetValue() != tc.want.ID {
					t.Errorf("%s: %v, want one series of model %s at %v", f.GetName(), m, tc.want.ID, want[f.GetName()])
				}
				delete(want, f.GetName())
			}
			if len(want) > 0 {
				t.Errorf("not collected: %v", want)
			}
			whole, split := answers[0], answers[1]
			if len(whole) != len(split) || len(whole) == 0 {
				t.Fatalf("%d values in one run, %d split", len(whole), len(split))
			}
			for i := range whole {
				if d := math.Abs(float64(whole[i] - split[i])); d > 1e-6*math.Max(1, math.Abs(float64(whole[i]))) {
					t.Fatalf("value %d (row %d): %v in one run, %v split", i, i/(len(whole)/n), whole[i], split[i])
				}
			}
		})
	}
}

// continuingExpect is the Expect of the shipped p_invoke expert id that
// continues the dense trees.
func continuingExpect(t *testing.T, m manifest.Manifest, id string, features int) Expect {
	t.Helper()
	for _, e := range m.Experts {
		if p := e.PInvoke; p != nil && p.ID == id {
			return continuing(p, features)
		}
	}
	t.Fatalf("no expert %s", id)
	return Expect{}
}

// TestCancelledCallRunsNothing: a call whose caller has gone answers the
// context's error, not a forecast, split into runs or not.
func TestCancelledCallRunsNothing(t *testing.T) {
	m, dir := setup(t)
	for _, per := range []int{0, 2} {
		mod, err := Load(filepath.Join(dir, m.Dense.File), expect(m.Dense), Options{IntraOpThreads: 1, MaxRowsPerRun: per})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		y, err := mod.Predict(ctx, make([]float32, 5*mod.InWidth), 5)
		mod.Close()
		if !errors.Is(err, context.Canceled) || y != nil {
			t.Fatalf("runs of %d rows: %d values, error %v; want none and context.Canceled", per, len(y), err)
		}
	}
}
