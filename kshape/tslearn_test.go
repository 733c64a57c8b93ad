package kshape

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"testing"

	"github.com/mesp-project/mesp/internal/fixture"
)

// TestMatchesTslearnFromSameStart: testdata/tslearn_fixture.json holds
// tslearn's KShape result on 60 real fixture rows from given initial
// centroids (made by scripts/kshape_tslearn_fixture.py). From the same
// start, Go must find the same clusters and an objective within 1%.
func TestMatchesTslearnFromSameStart(t *testing.T) {
	raw, err := os.ReadFile("testdata/tslearn_fixture.json")
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		K         int      `json:"k"`
		Functions []string `json:"functions"`
		InitRows  []int    `json:"init_rows"`
		Labels    []int    `json:"labels"`
		Objective float64  `json:"objective"`
	}
	if err := json.Unmarshal(raw, &ref); err != nil {
		t.Fatal(err)
	}
	fns := fixture.Rows(t)
	byID := map[string][]float64{}
	for _, f := range fns {
		byID[f.ID] = f.Counts
	}
	series := make([][]float64, len(ref.Functions))
	for i, id := range ref.Functions {
		if series[i] = byID[id]; series[i] == nil {
			t.Fatalf("function %s not in the fixture", id)
		}
	}
	init := make([][]float64, ref.K)
	for j, r := range ref.InitRows {
		init[j] = series[r]
	}
	res, err := FitFromCentroids(context.Background(), series, init, Options{K: ref.K, MaxIter: 100})
	if err != nil {
		t.Fatal(err)
	}
	if ari := adjustedRand(ref.Labels, res.Labels); ari < 0.999 {
		t.Errorf("clusters differ from tslearn: adjusted Rand index %.4f", ari)
	}
	if rel := math.Abs(res.Objective-ref.Objective) / ref.Objective; rel > 0.01 {
		t.Errorf("objective %.4f vs tslearn %.4f (%.2f%% apart)", res.Objective, ref.Objective, 100*rel)
	}
}
