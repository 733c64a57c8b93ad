package manifest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestValidateConfinesFilesAndRequiresHashes(t *testing.T) {
	good := strings.Repeat("ab", 32)
	base := func() Manifest {
		return Manifest{Version: Version, Horizon: Horizon, Clusters: "clusters.json", ClustersSHA256: good,
			Dense:   Model{ID: "dense", File: "dense.onnx", SHA256: good, InputLen: 240},
			Experts: []Expert{{Model: Model{ID: "cluster-0", File: "expert-0.onnx", SHA256: good, InputLen: 240}, Cluster: 0, Serve: "expert"}}}
	}
	if err := base().Validate(); err != nil {
		t.Fatalf("a good manifest: %v", err)
	}
	cases := map[string]func(*Manifest){
		"dense outside":       func(m *Manifest) { m.Dense.File = "../x.onnx" },
		"expert absolute":     func(m *Manifest) { m.Experts[0].File = "/etc/passwd" },
		"clusters outside":    func(m *Manifest) { m.Clusters = "../other/clusters.json" },
		"empty sha256":        func(m *Manifest) { m.Experts[0].SHA256 = "" },
		"short sha256":        func(m *Manifest) { m.Dense.SHA256 = "abc" },
		"clusters not pinned": func(m *Manifest) { m.ClustersSHA256 = "" },
		"upper-case sha256":   func(m *Manifest) { m.Dense.SHA256 = strings.ToUpper(good) },
		"p_invoke outside": func(m *Manifest) {
			m.Dense.PInvoke = &PInvoke{ID: "p", File: "a/../../p.onnx", SHA256: good, InputLen: PInvokeInputLen}
		},
		"p_invoke without hash": func(m *Manifest) { m.Dense.PInvoke = &PInvoke{ID: "p", File: "p.onnx", InputLen: PInvokeInputLen} },
		"expert continues another model": func(m *Manifest) {
			m.Dense.PInvoke = &PInvoke{ID: "dense-p", File: "p.onnx", SHA256: good, InputLen: PInvokeInputLen}
			m.Experts[0].PInvoke = &PInvoke{ID: "e-p", File: "e.onnx", SHA256: good, InputLen: PInvokeInputLen, Serve: "expert", Base: "old-dense-p"}
		},
		"soft routing without tau":               func(m *Manifest) { m.Routing = &Routing{MinWeight: 0.1} },
		"soft routing min weight above one half": func(m *Manifest) { m.Routing = &Routing{SoftTau: 0.1, MinWeight: 0.6} },
		"trees without weight": func(m *Manifest) {
			m.Trees = &Trees{TreesGraph: TreesGraph{Model: Model{ID: "dense-trees", File: "t.onnx", SHA256: good, InputLen: 240}}}
		},
		"trees weight above one": func(m *Manifest) {
			m.Trees = &Trees{TreesGraph: TreesGraph{Model: Model{ID: "dense-trees", File: "t.onnx", SHA256: good, InputLen: 240}}, Weight: 1.5}
		},
		"mean trees without weight": func(m *Manifest) {
			m.Mean = &Trees{TreesGraph: TreesGraph{Model: Model{ID: "dense-trees-mean", File: "m.onnx", SHA256: good, InputLen: 240}}}
		},
		"mean trees outside": func(m *Manifest) {
			m.Mean = &Trees{TreesGraph: TreesGraph{Model: Model{ID: "dense-trees-mean", File: "../m.onnx", SHA256: good, InputLen: 240}}, Weight: 1}
		},
		"trees outside": func(m *Manifest) {
			m.Trees = &Trees{TreesGraph: TreesGraph{Model: Model{ID: "dense-trees", File: "../t.onnx", SHA256: good, InputLen: 240}}, Weight: 0.5}
		},
		"trees with a p_invoke model": func(m *Manifest) {
			m.Trees = &Trees{TreesGraph: TreesGraph{Model: Model{ID: "dense-trees", File: "t.onnx", SHA256: good, InputLen: 240,
				PInvoke: &PInvoke{ID: "p", File: "p.onnx", SHA256: good, InputLen: PInvokeInputLen}}}, Weight: 0.5}
		},
		"expected count from an unserved level": func(m *Manifest) {
			m.Quantiles = []Quantile{{TreesGraph: TreesGraph{Model: Model{ID: "q", File: "q.onnx", SHA256: good, InputLen: 240}}, Q: 0.9}}
			m.Expected = &Expected{Quantile: 0.95, Share: 0.2}
		},
		"mean trees with the scale of older sets": func(m *Manifest) {
			m.Mean = &Trees{TreesGraph: TreesGraph{Model: Model{ID: "dense-trees-mean", File: "m.onnx", SHA256: good, InputLen: 240}}, Weight: 0.4, Hour: true, Scale: 1.0411}
		},
		"expected count without quantiles": func(m *Manifest) { m.Expected = &Expected{Quantile: 0.9, Share: 0.2} },
		"expected share above one": func(m *Manifest) {
			m.Quantiles = []Quantile{{TreesGraph: TreesGraph{Model: Model{ID: "q", File: "q.onnx", SHA256: good, InputLen: 240}}, Q: 0.9}}
			m.Expected = &Expected{Quantile: 0.9, Share: 1.5}
		},
		"negative expected share": func(m *Manifest) {
			m.Quantiles = []Quantile{{TreesGraph: TreesGraph{Model: Model{ID: "q", File: "q.onnx", SHA256: good, InputLen: 240}}, Q: 0.9}}
			m.Expected = &Expected{Quantile: 0.9, Share: -0.1}
		},
		"expected share not a number": func(m *Manifest) {
			m.Quantiles = []Quantile{{TreesGraph: TreesGraph{Model: Model{ID: "q", File: "q.onnx", SHA256: good, InputLen: 240}}, Q: 0.9}}
			m.Expected = &Expected{Quantile: 0.9, Share: math.NaN()}
		},
		"quantile at the median": func(m *Manifest) {
			m.Quantiles = []Quantile{{TreesGraph: TreesGraph{Model: Model{ID: "q", File: "q.onnx", SHA256: good, InputLen: 240}}, Q: 0.5}}
		},
		"quantile at one": func(m *Manifest) {
			m.Quantiles = []Quantile{{TreesGraph: TreesGraph{Model: Model{ID: "q", File: "q.onnx", SHA256: good, InputLen: 240}}, Q: 1}}
		},
		"quantiles out of order": func(m *Manifest) {
			m.Quantiles = []Quantile{{TreesGraph: TreesGraph{Model: Model{ID: "q99", File: "q99.onnx", SHA256: good, InputLen: 240}}, Q: 0.99},
				{TreesGraph: TreesGraph{Model: Model{ID: "q9", File: "q9.onnx", SHA256: good, InputLen: 240}}, Q: 0.9}}
		},
		"quantile outside": func(m *Manifest) {
			m.Quantiles = []Quantile{{TreesGraph: TreesGraph{Model: Model{ID: "q", File: "../q.onnx", SHA256: good, InputLen: 240}}, Q: 0.9}}
		},
		"quantile without len": func(m *Manifest) {
			m.Quantiles = []Quantile{{TreesGraph: TreesGraph{Model: Model{ID: "q", File: "q.onnx", SHA256: good}}, Q: 0.9}}
		},
		"quantile scale NaN": func(m *Manifest) {
			m.Quantiles = []Quantile{{TreesGraph: TreesGraph{Model: Model{ID: "q", File: "q.onnx", SHA256: good, InputLen: 240}}, Q: 0.9, Scale: math.NaN()}}
		},
		"quantile scale too large": func(m *Manifest) {
			m.Quantiles = []Quantile{{TreesGraph: TreesGraph{Model: Model{ID: "q", File: "q.onnx", SHA256: good, InputLen: 240}}, Q: 0.9, Scale: 11}}
		},
		"quantile negative scale": func(m *Manifest) {
			m.Quantiles = []Quantile{{TreesGraph: TreesGraph{Model: Model{ID: "q", File: "q.onnx", SHA256: good, InputLen: 240}}, Q: 0.9, Scale: -1}}
		},
		"quantile fitted at one": func(m *Manifest) {
			m.Quantiles = []Quantile{{TreesGraph: TreesGraph{Model: Model{ID: "q", File: "q.onnx", SHA256: good, InputLen: 240}}, Q: 0.9, Fitted: 1}}
		},
		"quantile NaN": func(m *Manifest) {
			m.Quantiles = []Quantile{{TreesGraph: TreesGraph{Model: Model{ID: "q", File: "q.onnx", SHA256: good, InputLen: 240}}, Q: math.NaN()}}
		},
		"dense continues a model": func(m *Manifest) {
			m.Dense.PInvoke = &PInvoke{ID: "dense-p", File: "p.onnx", SHA256: good, InputLen: PInvokeInputLen, Base: "dense-p"}
		},
	}
	// Count trees at a weight in (0, 1] are good.
	m := base()
	m.Trees = &Trees{TreesGraph: TreesGraph{Model: Model{ID: "dense-trees", File: "t.onnx", SHA256: good, InputLen: 240}}, Weight: 0.6}
	if err := m.Validate(); err != nil {
		t.Fatalf("count trees: %v", err)
	}
	// Quantile trees in increasing order are good, and named as outputs name them.
	m = base()
	m.Quantiles = []Quantile{{TreesGraph: TreesGraph{Model: Model{ID: "q9", File: "q9.onnx", SHA256: good, InputLen: 240}}, Q: 0.9},
		{TreesGraph: TreesGraph{Model: Model{ID: "q99", File: "q99.onnx", SHA256: good, InputLen: 240}}, Q: 0.99}}
	if err := m.Validate(); err != nil {
		t.Fatalf("quantile trees: %v", err)
	}
	// several levels may share one graph, each at its own scale
	g := TreesGraph{Model: Model{ID: "q9", File: "q9.onnx", SHA256: good, InputLen: 240}}
	m.Quantiles = []Quantile{{TreesGraph: g, Q: 0.8, Fitted: 0.9, Scale: 0.7}, {TreesGraph: g, Q: 0.9}, {TreesGraph: g, Q: 0.95, Fitted: 0.9, Scale: 1.4}}
	if err := m.Validate(); err != nil || m.Quantiles[0].FittedAt() != 0.9 || m.Quantiles[1].FittedAt() != 0.9 || m.Quantiles[1].Scales() != 1 || m.Quantiles[2].Scales() != 1.4 {
		t.Fatalf("levels sharing a graph: %v", err)
	}
	if got := []string{QuantileName(0.5), QuantileName(0.9), QuantileName(0.99)}; !slices.Equal(got, []string{"q0.5", "q0.9", "q0.99"}) {
		t.Fatalf("quantile names %q", got)
	}
	// An expected count from a served level, at any share in [0, 1], is good.
	for _, share := range []float64{0, 0.2174, 1} {
		m = base()
		m.Quantiles = []Quantile{{TreesGraph: TreesGraph{Model: Model{ID: "q", File: "q.onnx", SHA256: good, InputLen: 240}}, Q: 0.9}}
		m.Expected = &Expected{Quantile: 0.9, Share: share}
		if err := m.Validate(); err != nil {
			t.Fatalf("expected share %v of q0.9: %v", share, err)
		}
	}
	// An expert that continues the set's dense p_invoke model is good.
	m = base()
	m.Dense.PInvoke = &PInvoke{ID: "dense-p", File: "p.onnx", SHA256: good, InputLen: PInvokeInputLen}
	m.Experts[0].PInvoke = &PInvoke{ID: "e-p", File: "e.onnx", SHA256: good, InputLen: PInvokeInputLen, Serve: "expert", Base: "dense-p"}
	if err := m.Validate(); err != nil {
		t.Fatalf("an expert continuing the dense p_invoke model: %v", err)
	}
	for name, edit := range cases {
		m := base()
		edit(&m)
		if err := m.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestOpenRefusesSymlinksOutAndWrongContent(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "models")
	os.Mkdir(dir, 0o755)
	inside, outside := []byte("inside"), []byte("outside")
	os.WriteFile(filepath.Join(dir, "a.onnx"), inside, 0o644)
	os.WriteFile(filepath.Join(root, "secret"), outside, 0o644)
	os.Symlink(filepath.Join(root, "secret"), filepath.Join(dir, "link.onnx"))
	os.Symlink("a.onnx", filepath.Join(dir, "alias.onnx"))
	if b, err := Open(dir, "a.onnx", sum(inside)); err != nil || string(b) != "inside" {
		t.Fatalf("a plain file: %q %v", b, err)
	}
	if _, err := Open(dir, "alias.onnx", sum(inside)); err != nil {
		t.Fatalf("a link inside the folder: %v", err)
	}
	if _, err := Open(dir, "link.onnx", sum(outside)); err == nil || !strings.Contains(err.Error(), "outside") {
		t.Fatalf("a link out of the folder: %v", err)
	}
	if _, err := Open(dir, "a.onnx", sum(outside)); !errors.Is(err, ErrChecksum) {
		t.Fatalf("wrong content: %v", err)
	}
	// A models folder that is itself a link (a symlink switch) is fine.
	os.Symlink(dir, filepath.Join(root, "current"))
	if _, err := Open(filepath.Join(root, "current"), "a.onnx", sum(inside)); err != nil {
		t.Fatalf("through a linked folder: %v", err)
	}
}

// TestWriteLeavesTheManifestReadableByAll: the set is served by users
// other than the one that wrote it (the image's user 10001), as Python's
// writer leaves it (0644), whatever the temporary file began as.
func TestWriteLeavesTheManifestReadableByAll(t *testing.T) {
	path := filepath.Join(t.TempDir(), "manifest.json")
	for range 2 { // a new file, then one replaced
		if err := Write(path, map[string]any{"version": Version}); err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o644 {
			t.Fatalf("manifest.json mode %v, want 0644", st.Mode().Perm())
		}
	}
}

// TestWriteKeepsTextAsWritten: a rule's words keep ">=" and "<" as
// Python's json.dump leaves them (Go's HTML escapes made every Go-written
// manifest differ from the Python-written one in lines it did not touch),
// and the file ends with one newline.
func TestWriteKeepsTextAsWritten(t *testing.T) {
	path := filepath.Join(t.TempDir(), "manifest.json")
	if err := Write(path, map[string]any{"rule": "MAE below dense in >= 90% & < 10%"}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := "{\n  \"rule\": \"MAE below dense in >= 90% & < 10%\"\n}\n"; string(b) != want {
		t.Fatalf("wrote %q, want %q", b, want)
	}
}

// TestRunnerGapIsWhereTheWeightReachesTheMinimum: a runner-up RunnerGap
// further off than the nearest has MinWeight (to rounding), one a little
// further has less; no minimum blends any runner-up, a minimum over one
// half none.
func TestRunnerGapIsWhereTheWeightReachesTheMinimum(t *testing.T) {
	cases := []struct {
		r       Routing
		wantGap float64 // NaN: finite, checked against the weight
	}{
		{Routing{SoftTau: 0.1, MinWeight: 0.3}, math.NaN()},
		{Routing{SoftTau: 0.05, MinWeight: 0.1}, math.NaN()},
		{Routing{SoftTau: 0.1, MinWeight: 0.5}, math.NaN()},
		{Routing{SoftTau: 0.1, MinWeight: 0}, math.Inf(1)},
		{Routing{SoftTau: 0.1, MinWeight: 0.6}, -1},
	}
	for _, tc := range cases {
		gap := tc.r.RunnerGap()
		if !math.IsNaN(tc.wantGap) {
			if gap != tc.wantGap {
				t.Errorf("%+v: gap %v, want %v", tc.r, gap, tc.wantGap)
			}
			continue
		}
		d1 := 0.2
		if w := tc.r.RunnerWeight(d1, d1+gap); math.Abs(w-tc.r.MinWeight) > 1e-6 {
			t.Errorf("%+v: weight %v at the gap %v, want %v", tc.r, w, gap, tc.r.MinWeight)
		}
		if w := tc.r.RunnerWeight(d1, d1+gap+1e-3); w >= tc.r.MinWeight {
			t.Errorf("%+v: weight %v beyond the gap %v", tc.r, w, gap)
		}
	}
}
