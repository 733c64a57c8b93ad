package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mesp-project/mesp/config"
	"github.com/mesp-project/mesp/internal/fixture"
	"github.com/mesp-project/mesp/manifest"
	"github.com/mesp-project/mesp/trace"
)

// TestClusterStreamsFixture runs `mesp cluster` on the fixture: every
// function of the part lands in exactly one cluster's Parquet file, with
// its raw counts, and clusters.json agrees with the files.
func TestClusterStreamsFixture(t *testing.T) {
	out := t.TempDir()
	err := runCluster(context.Background(), []string{"--data", fixture.Sample100, "--part", "all", "--k", "3", "--restarts", "1", "--max-iter", "10", "--out", out})
	if err != nil {
		t.Fatal(err)
	}
	var cs manifest.Clusters
	if err := manifest.Read(filepath.Join(out, "clusters.json"), &cs); err != nil {
		t.Fatal(err)
	}
	raw := fixture.Rows(t)
	byID := map[string][]float64{}
	for _, f := range raw {
		byID[f.ID] = f.Counts
	}
	if len(cs.Members) != len(raw) || cs.K != 3 {
		t.Fatalf("%d members, K=%d; want %d, 3", len(cs.Members), cs.K, len(raw))
	}
	seen := 0
	for _, c := range cs.Clusters {
		fns, err := trace.ReadParquet(filepath.Join(out, c.Parquet))
		if err != nil {
			t.Fatal(err)
		}
		if len(fns) != c.Size {
			t.Errorf("cluster %d: %d rows in Parquet, size %d", c.ID, len(fns), c.Size)
		}
		for _, f := range fns {
			want := byID[f.ID]
			if len(want) != len(f.Counts) {
				t.Fatalf("%s: %d counts, want %d", f.ID, len(f.Counts), len(want))
			}
			for m := range want {
				if float64(float32(want[m])) != f.Counts[m] {
					t.Fatalf("%s minute %d: %v, want %v", f.ID, m, f.Counts[m], want[m])
				}
			}
			seen++
		}
	}
	if seen != len(raw) {
		t.Errorf("%d functions in the Parquet files, want %d", seen, len(raw))
	}
}

// TestReclusteringPublishesACompleteSet: clustering again with another K
// into the same folder leaves exactly the new set (no Parquet file of the
// old K), and a hidden staging folder never stays behind.
func TestReclusteringPublishesACompleteSet(t *testing.T) {
	root := t.TempDir()
	out := filepath.Join(root, "work")
	for _, k := range []string{"3", "2"} {
		if err := runCluster(context.Background(), []string{"--data", fixture.Sample100, "--part", "all", "--k", k,
			"--restarts", "1", "--max-iter", "5", "--out", out}); err != nil {
			t.Fatal(err)
		}
	}
	entries, _ := os.ReadDir(out)
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	want := []string{"centroids.png", "cluster-0.parquet", "cluster-1.parquet", "clusters.json"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("folder holds %v, want %v", got, want)
	}
	if siblings, _ := os.ReadDir(root); len(siblings) != 1 {
		t.Fatalf("left beside it: %v", siblings)
	}
}

// TestPublishVerifiesBeforeSwapping: a set the server would refuse is not
// published and the served folder keeps its files; a good set replaces
// it whole.
func TestPublishVerifiesBeforeSwapping(t *testing.T) {
	served := fixture.CopyModels(t)
	good := fixture.CopyModels(t)
	bad := fixture.CopyModels(t)
	m, err := manifest.ReadManifest(bad)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(bad, m.Experts[0].File), []byte("not a model"), 0o644)
	os.WriteFile(filepath.Join(served, "stale.parquet"), []byte("x"), 0o644)
	lib := []string{"--ort-library", config.ORT{}.ORTLibrary()}
	if err := runPublish(context.Background(), append([]string{"--from", bad, "--models", served}, lib...)); err == nil {
		t.Fatal("a broken set was published")
	}
	if _, err := os.Stat(filepath.Join(served, "stale.parquet")); err != nil {
		t.Fatal("the served folder changed although nothing was published")
	}
	if err := runPublish(context.Background(), append([]string{"--from", good, "--models", served}, lib...)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(served, "stale.parquet")); err == nil {
		t.Fatal("a file of the old set survived the publication")
	}
	if _, err := manifest.ReadManifest(served); err != nil {
		t.Fatal(err)
	}
}

// cluster calibrate rewrites the radii only and re-pins clusters.json in
// the manifest: the set still verifies, centroids and members unchanged.
func TestClusterCalibrateRepinsTheSet(t *testing.T) {
	dir := fixture.CopyModels(t)
	before, err := manifest.ReadClusters(filepath.Join(dir, "clusters.json"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range before.Clusters {
		before.Clusters[i].PartialThresholds = nil
	}
	if err := manifest.Write(filepath.Join(dir, "clusters.json"), before); err != nil {
		t.Fatal(err)
	}
	if _, err := manifest.ReadManifest(dir); err != nil {
		t.Fatal(err)
	}
	if err := runClusterCalibrate(context.Background(), []string{"--data", fixture.Sample100, "--models", dir}); err != nil {
		t.Fatal(err)
	}
	m, err := manifest.ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := manifest.Open(dir, m.Clusters, m.ClustersSHA256); err != nil {
		t.Fatalf("clusters.json not re-pinned: %v", err)
	}
	after, err := manifest.ReadClusters(filepath.Join(dir, "clusters.json"))
	if err != nil {
		t.Fatal(err)
	}
	radii := 0
	for i, c := range after.Clusters {
		radii += len(c.PartialThresholds)
		if !slices.Equal(c.Centroid, before.Clusters[i].Centroid) || c.Threshold != before.Clusters[i].Threshold {
			t.Fatalf("cluster %d changed beyond its partial radii", c.ID)
		}
	}
	if radii == 0 || len(after.Members) != len(before.Members) {
		t.Fatalf("%d partial radii, %d members (was %d)", radii, len(after.Members), len(before.Members))
	}
}
