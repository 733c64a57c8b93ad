package onnx

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mesp-project/mesp/config"
	"github.com/mesp-project/mesp/internal/fixture"
	"github.com/mesp-project/mesp/manifest"
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
	var continuing string
	var plain Expect
	for _, e := range m.Experts {
		if p := e.PInvoke; p != nil && p.Base != "" {
			continuing = filepath.Join(dir, p.File)
			plain = Expect{ID: p.ID, SHA256: p.SHA256, InputLen: p.InputLen, Horizon: manifest.Horizon, Output: manifest.PInvokeOutputName}
		}
	}
	cases := []struct {
		name     string
		path     string
		want     Expect
		mismatch bool
	}{
		{"truncated file", corrupt, noSum(expect(m.Dense)), false},
		{"not ONNX", garbage, noSum(expect(m.Dense)), false},
		{"missing file", filepath.Join(tmp, "nope.onnx"), expect(m.Dense), false},
		{"wrong input length", good, wrongLen, true},
		{"wrong model id", good, wrongID, true},
		{"wrong sha256", good, wrongSum, true},
		{"count model expected to take dense_p1", good, takesDense, true},
		{"expert taking dense_p1 expected without it", continuing, plain, true},
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
// caller its own rows, for a count model and for a p_invoke expert that
// takes the dense model's minute 1 (merged beside the counts).
func TestBatcherMatchesDirectUnderConcurrency(t *testing.T) {
	_, dense := loadDense(t)
	for _, mod := range []*Model{dense, loadContinuingExpert(t)} {
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
		inputs[c] = make([]float32, mod.InputLen)
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

// loadDense loads the shipped dense model on one intra-op thread, closed
// when the test ends.
// loadContinuingExpert loads the first shipped p_invoke expert whose trees
// continue the dense model's (it takes dense_p1).
func loadContinuingExpert(t *testing.T) *Model {
	t.Helper()
	m, dir := setup(t)
	for _, e := range m.Experts {
		if p := e.PInvoke; p != nil && p.Base != "" {
			mod, err := Load(filepath.Join(dir, p.File), Expect{ID: p.ID, SHA256: p.SHA256, InputLen: p.InputLen,
				Horizon: manifest.Horizon, Output: manifest.PInvokeOutputName, DenseP1: true}, Options{IntraOpThreads: 1})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { mod.Close() })
			return mod
		}
	}
	t.Fatal("no shipped p_invoke expert continues the dense trees")
	return nil
}

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
