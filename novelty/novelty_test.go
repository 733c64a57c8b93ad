package novelty

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/mesp-project/mesp/internal/fixture"
	"github.com/mesp-project/mesp/kshape"
	"github.com/mesp-project/mesp/manifest"
	"github.com/mesp-project/mesp/oodlog"
	"github.com/mesp-project/mesp/router"
	"github.com/mesp-project/mesp/trace"
)

// TestReadLearnsOnlyFromTrustedSources: with sources set, OOD records from
// other clients (or without a recorded source) are not learnt from.
func TestReadLearnsOnlyFromTrustedSources(t *testing.T) {
	dir := t.TempDir()
	log, err := oodlog.Open(dir, 1<<20, 2)
	if err != nil {
		t.Fatal(err)
	}
	day := make([]float64, 1440)
	for i, src := range []string{"10.0.0.7", "192.168.1.9", "", "10.0.1.200", "::ffff:10.0.0.8"} {
		if err := log.Append(oodlog.Record{Function: fmt.Sprint("f", i), Counts: day, Source: src}); err != nil {
			t.Fatal(err)
		}
	}
	// A shorter pattern is skipped whatever its source.
	if err := log.Append(oodlog.Record{Function: "short", Counts: day[:600], Source: "10.0.0.9"}); err != nil {
		t.Fatal(err)
	}
	trusted, err := ParseSources([]string{"10.0.0.0/24", "10.0.1.200"})
	if err != nil {
		t.Fatal(err)
	}
	fns, skipped, err := Read(dir, 1440, trusted)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, f := range fns {
		ids = append(ids, f.ID)
	}
	if strings.Join(ids, ",") != "f0,f3,f4" || skipped != 3 {
		t.Fatalf("learnt from %v, skipped %d; want f0, f3, f4 and 3 skipped", ids, skipped)
	}
	if all, _, _ := Read(dir, 1440, nil); len(all) != 5 {
		t.Fatalf("without sources: %d records, want 5", len(all))
	}
	if _, err := ParseSources([]string{"not-an-address"}); err == nil {
		t.Fatal("a bad source was accepted")
	}
}

// A fit by hand over the shipped clusters: candidate 0's centroid is an
// existing centroid (not new), candidate 1's a shape no cluster has, and
// candidate 2 has that shape too but too few members.
func TestJudgeAndAppend(t *testing.T) {
	cs, err := manifest.ReadClusters(fixture.Models() + "/clusters.json")
	if err != nil {
		t.Fatal(err)
	}
	before := slices.Clone(cs.Clusters)
	rt, err := router.New(cs)
	if err != nil {
		t.Fatal(err)
	}
	novel := make([]float64, cs.Length)
	for i := range novel {
		// A burst every 97 minutes: no cluster of the shipped set has it.
		if i%97 < 3 {
			novel[i] = 1
		}
	}
	novel = kshape.ZNormalize(novel)
	res := &kshape.Result{Centroids: [][]float64{cs.Clusters[2].Centroid, novel, novel}}
	var fns []trace.Function
	for i, label := range []int{0, 0, 0, 1, 1, 1, 2} {
		fns = append(fns, trace.Function{ID: fmt.Sprint("f", i), Counts: make([]float64, cs.Length)})
		res.Labels = append(res.Labels, label)
		res.Distances = append(res.Distances, 0.01*float64(i))
	}
	cands, err := Judge(context.Background(), rt, fns, res, 3, 3)
	if err != nil {
		t.Fatal(err)
	}
	if got := []bool{cands[0].New, cands[1].New, cands[2].New}; !slices.Equal(got, []bool{false, true, false}) {
		t.Fatalf("new: %v, want [false true false] (routes %+v, %+v, %+v)", got, cands[0].Nearest, cands[1].Nearest, cands[2].Nearest)
	}
	if cands[0].Nearest.Cluster != cs.Clusters[2].ID || cands[0].Nearest.Distance > 1e-9 {
		t.Errorf("an existing centroid routed to %+v, want cluster %d at 0", cands[0].Nearest, cs.Clusters[2].ID)
	}
	if len(cands[1].Members) != 3 || cands[1].Members[0].ID != "f3" || math.Abs(cands[1].Radius-0.05) > 0.0051 {
		t.Errorf("candidate 1: %d members from %s, radius %.4f", len(cands[1].Members), cands[1].Members[0].ID, cands[1].Radius)
	}
	maxID := 0
	for _, c := range cs.Clusters {
		maxID = max(maxID, c.ID)
	}
	members := len(cs.Members)
	added := Append(&cs, cands)
	if len(added) != 1 || added[0].Cluster.ID != maxID+1 || added[0].Cluster.Parquet != fmt.Sprintf("cluster-%d.parquet", maxID+1) {
		t.Fatalf("added %+v, want one cluster %d", added, maxID+1)
	}
	if cs.K != len(before)+1 || len(cs.Members) != members+3 || cs.Members[len(cs.Members)-1].Cluster != maxID+1 {
		t.Errorf("K %d, %d members after adding 3 to %d", cs.K, len(cs.Members), members)
	}
	for i, c := range before {
		if cs.Clusters[i].ID != c.ID || cs.Clusters[i].Threshold != c.Threshold || !slices.Equal(cs.Clusters[i].Centroid, c.Centroid) {
			t.Errorf("existing cluster %d changed", c.ID)
		}
	}
	if _, err := Judge(context.Background(), rt, fns[:2], res, 3, 3); err == nil {
		t.Error("a fit of 7 series was judged against 2 patterns")
	}
}

func TestMaxK(t *testing.T) {
	for _, c := range []struct{ lo, hi, n, minSize, want int }{
		{1, 4, 100, 5, 4}, {1, 4, 12, 5, 2}, {2, 4, 3, 5, 2}, {1, 4, 10, 0, 4},
	} {
		if got := MaxK(c.lo, c.hi, c.n, c.minSize); got != c.want {
			t.Errorf("MaxK(%d, %d, %d, %d) = %d, want %d", c.lo, c.hi, c.n, c.minSize, got, c.want)
		}
	}
}
