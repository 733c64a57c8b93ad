package onnx

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/mesp-project/mesp/internal/fixture"
	"github.com/mesp-project/mesp/manifest"
)

// TestCUDAMatchesCPU runs every shipped graph, counts and p_invoke, through
// the CUDA execution provider and through the CPU provider of the same GPU
// build of ONNX Runtime, on the fixture's real rows, and wants the same
// answers. It needs a GPU and MESP_CUDA_ORT_LIBRARY (a GPU build's
// libonnxruntime.so, with CUDA's libraries on the loader's path); it is
// skipped without them, and the library being process-wide, it runs alone:
// go test ./onnx -run TestCUDAMatchesCPU.
//
// The CUDA provider runs float32 matrix products in TF32 on Ampere and
// later GPUs (10-bit mantissa), so the answers agree to about 1e-3, not to
// float32's 1e-6: on an H200 the largest differences were 3.1e-3
// (relative, counts) and 1.3e-3 (p_invoke), hence the tolerance.
func TestCUDAMatchesCPU(t *testing.T) {
	lib := os.Getenv("MESP_CUDA_ORT_LIBRARY")
	if lib == "" {
		t.Skip("MESP_CUDA_ORT_LIBRARY not set (a GPU build of ONNX Runtime on a machine with a GPU)")
	}
	if _, err := Init(lib); err != nil {
		t.Fatalf("%v (run this test alone)", err)
	}
	dir := fixture.Models()
	m, err := manifest.ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	rows := fixture.Rows(t)
	var graphs []Expect
	files := map[string]string{}
	// Experts that continue the dense p_invoke trees take its features and
	// minute 1 on the same rows: from the CPU run of the dense graph.
	var features, p1 []float32
	for _, mod := range append([]manifest.Model{m.Dense}, expertModels(m)...) {
		graphs = append(graphs, expect(mod))
		files[mod.ID] = mod.File
		p := mod.PInvoke
		if p == nil {
			continue
		}
		want := Expect{ID: p.ID, SHA256: p.SHA256, InputLen: p.InputLen, Horizon: manifest.Horizon, Output: manifest.PInvokeOutputName}
		if p.Base != "" {
			if features == nil {
				dense := loadPDense(t, m, dir)
				in := make([]float32, 0, len(rows)*dense.InWidth)
				for _, f := range rows {
					for _, v := range f.Counts[len(f.Counts)-dense.InWidth:] {
						in = append(in, float32(v))
					}
				}
				_, fs, ps := denseRows(t, dense, in, len(rows))
				features, p1 = slices.Concat(fs...), ps
			}
			want = continuing(p, len(features)/len(rows))
		}
		graphs = append(graphs, want)
		files[p.ID] = p.File
	}
	for _, want := range graphs {
		t.Run(want.ID, func(t *testing.T) {
			path := filepath.Join(dir, files[want.ID])
			cpu, err := Load(path, want, Options{IntraOpThreads: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer cpu.Close()
			gpu, err := Load(path, want, Options{Provider: "cuda"})
			if err != nil {
				t.Fatal(err)
			}
			defer gpu.Close()
			// The last InputLen minutes of each real day, as one batch
			// (their dense features and minute 1 for a continuing expert).
			in, dense := features, p1
			if !want.DenseP1 {
				in, dense = make([]float32, 0, len(rows)*want.InputLen), nil
				for _, f := range rows {
					for _, v := range f.Counts[len(f.Counts)-want.InputLen:] {
						in = append(in, float32(v))
					}
				}
			}
			a, err := cpu.PredictDense(context.Background(), in, dense, len(rows))
			if err != nil {
				t.Fatal(err)
			}
			b, err := gpu.PredictDense(context.Background(), in, dense, len(rows))
			if err != nil {
				t.Fatal(err)
			}
			worst := 0.0
			for i := range a {
				// Relative to the value for counts, absolute for
				// probabilities.
				d := math.Abs(float64(a[i]) - float64(b[i]))
				if want.Output != manifest.PInvokeOutputName {
					d /= math.Max(1, math.Abs(float64(a[i])))
				}
				worst = math.Max(worst, d)
			}
			t.Logf("%s: %d values, largest CPU/CUDA difference %.2e", want.ID, len(a), worst)
			if worst > cudaTolerance {
				t.Errorf("%s: CUDA and CPU differ by %.2e (want <= %.0e)", want.ID, worst, cudaTolerance)
			}
		})
	}
}

const cudaTolerance = 5e-3

func expertModels(m manifest.Manifest) []manifest.Model {
	out := make([]manifest.Model, len(m.Experts))
	for i, e := range m.Experts {
		out[i] = e.Model
	}
	return out
}
