package router

import (
	"context"
	"math"
	"path/filepath"
	"testing"

	"github.com/mesp-project/mesp/internal/fixture"
	"github.com/mesp-project/mesp/kshape"
	"github.com/mesp-project/mesp/manifest"
)

func bump(m, at, width int) []float64 {
	x := make([]float64, m)
	for t := range x {
		x[t] = math.Exp(-math.Pow(float64(t-at)/float64(width), 2))
	}
	return x
}

func periodic(m, period int) []float64 {
	x := make([]float64, m)
	for t := range x {
		if t%period < 3 {
			x[t] = 1
		}
	}
	return x
}

func testClusters(m int) manifest.Clusters {
	return manifest.Clusters{Version: 1, K: 2, Length: m, Clusters: []manifest.Cluster{
		{ID: 10, Centroid: kshape.ZNormalize(bump(m, m/3, m/20)), Threshold: 0.2},
		{ID: 20, Centroid: kshape.ZNormalize(periodic(m, 60)), Threshold: 0.3},
	}}
}

func TestRoute(t *testing.T) {
	m := 1440
	r, err := New(testClusters(m))
	if err != nil {
		t.Fatal(err)
	}
	noise := make([]float64, m)
	for i := range noise {
		noise[i] = float64((i * 7919) % 13) // deterministic, shapeless
	}
	cases := []struct {
		name    string
		counts  []float64
		cluster int
		ood     bool
	}{
		{"bump shifted and scaled", scaleAdd(kshape.Shift(bump(m, m/3, m/20), 200), 50, 3), 10, false},
		{"periodic, last 1080 minutes only", periodic(m, 60)[m-1080:], 20, false},
		{"periodic, shifted", kshape.Shift(periodic(m, 60), 17), 20, false},
		{"noise is out of distribution", noise, -1, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := r.Route(context.Background(), tc.counts)
			if err != nil {
				t.Fatal(err)
			}
			if got.OOD != tc.ood || (!tc.ood && got.Cluster != tc.cluster) {
				t.Fatalf("got %+v, want cluster %d ood %v", got, tc.cluster, tc.ood)
			}
		})
	}
}

func scaleAdd(x []float64, a, b float64) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = a*v + b
	}
	return out
}

func TestRouteRejectsBadLength(t *testing.T) {
	r, _ := New(testClusters(100))
	for _, n := range []int{0, 101} {
		if _, err := r.Route(context.Background(), make([]float64, n)); err == nil {
			t.Errorf("length %d: want error", n)
		}
	}
}

func TestConstantPatternIsOOD(t *testing.T) {
	// A flat pattern has no shape: NCC 0 with everything, SBD 1.
	r, _ := New(testClusters(1440))
	got, err := r.Route(context.Background(), make([]float64, 1440))
	if err != nil || !got.OOD || got.Distance != 1 {
		t.Fatalf("got %+v, %v", got, err)
	}
}

func TestPartialThresholdInterpolates(t *testing.T) {
	cs := testClusters(1440)
	cs.Clusters[0].PartialThresholds = []manifest.LengthThreshold{{Length: 240, Threshold: 0.3}, {Length: 480, Threshold: 0.5}, {Length: 1439, Threshold: 0.6}}
	r, err := New(cs)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		cluster, n int
		want       float64
	}{
		{0, 100, 0.3},  // shorter than any calibrated length: the shortest's
		{0, 240, 0.3},  // calibrated
		{0, 360, 0.4},  // halfway
		{0, 1439, 0.6}, // the longest partial window
		{0, 1440, 0.2}, // a full day: the SBD radius
		{1, 360, 0.3},  // no partial radii: the full-day one
	}
	for _, tc := range cases {
		if got := r.threshold(tc.cluster, tc.n); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("cluster index %d, %d minutes: threshold %v, want %v", tc.cluster, tc.n, got, tc.want)
		}
	}
}

// A partial window is compared with same-length stretches: a noisy copy
// of the part of a peaked centroid around its peak matches only loosely,
// and its distance says so. (The length correction this replaced scaled
// its NCC past 1 and put it at distance 0, so no such window was ever out
// of distribution.)
func TestPartialWindowDistanceIsNotInflated(t *testing.T) {
	m := 1440
	r, err := New(testClusters(m))
	if err != nil {
		t.Fatal(err)
	}
	peak := bump(m, m/3, m/20)[m/3-120 : m/3+120]
	window := make([]float64, len(peak))
	for i, v := range peak {
		window[i] = v + 1.0*float64((i*7919)%13)/13 // deterministic noise
	}
	got, err := r.Route(context.Background(), window)
	if err != nil {
		t.Fatal(err)
	}
	if got.Cluster != 10 || got.Distance < 0.2 || !got.OOD {
		t.Fatalf("noisy peak at distance %.3f from cluster %d (OOD %v): want cluster 10 at an honest distance, beyond its radius 0.2", got.Distance, got.Cluster, got.OOD)
	}
}

// TestRunnerUpIsTheNearestOfTheRest: with WithRunnerUp, a route's runner-up
// is what a router without the nearest cluster answers (its distance, and
// its radius for OOD), on real functions, full days and partial ones;
// without it there is no runner-up.
func TestRunnerUpIsTheNearestOfTheRest(t *testing.T) {
	cs, err := manifest.ReadClusters(filepath.Join(fixture.Models(), "clusters.json"))
	if err != nil {
		t.Fatal(err)
	}
	full, err := New(cs)
	if err != nil {
		t.Fatal(err)
	}
	two, err := New(cs)
	if err != nil {
		t.Fatal(err)
	}
	two.WithRunnerUp()
	without := map[int]*Router{} // cluster id -> a router without it
	for i, c := range cs.Clusters {
		rest := cs
		rest.Clusters = append(append([]manifest.Cluster(nil), cs.Clusters[:i]...), cs.Clusters[i+1:]...)
		if without[c.ID], err = New(rest); err != nil {
			t.Fatal(err)
		}
	}
	nearRouters := map[float64]*Router{}
	for _, gap := range []float64{0.02, 0.0847, 0.3} {
		if nearRouters[gap], err = New(cs); err != nil {
			t.Fatal(err)
		}
		nearRouters[gap].WithRunnerUpWithin(gap)
	}
	ctx := context.Background()
	for _, f := range fixture.Rows(t)[:40] {
		for _, n := range []int{1440, 1200, 300} {
			counts := f.Counts[:n]
			hard, err := full.Route(ctx, counts)
			if err != nil {
				t.Fatal(err)
			}
			if hard.Runner != -1 || hard.RunnerWithin {
				t.Fatalf("%s n=%d: a runner-up without WithRunnerUp: %+v", f.ID, n, hard)
			}
			got, err := two.Route(ctx, counts)
			if err != nil {
				t.Fatal(err)
			}
			if got.Cluster != hard.Cluster || got.Distance != hard.Distance || got.OOD != hard.OOD {
				t.Fatalf("%s n=%d: nearest %+v with the runner-up, %+v without", f.ID, n, got, hard)
			}
			if flat(counts) { // every NCC is 0: no runner-up
				if got.Runner != -1 {
					t.Fatalf("%s n=%d: a flat pattern's runner-up %d", f.ID, n, got.Runner)
				}
				continue
			}
			rest, err := without[hard.Cluster].Route(ctx, counts)
			if err != nil {
				t.Fatal(err)
			}
			if got.Runner != rest.Cluster || got.RunnerDistance != rest.Distance || got.RunnerWithin == rest.OOD {
				t.Fatalf("%s n=%d: runner-up %d at %v (within %v); without cluster %d: %+v", f.ID, n, got.Runner, got.RunnerDistance, got.RunnerWithin, hard.Cluster, rest)
			}
			// within a gap: the same runner-up where it is that near,
			// none where it is further off
			for gap, near := range nearRouters {
				r, err := near.Route(ctx, counts)
				if err != nil {
					t.Fatal(err)
				}
				want := got
				if got.RunnerDistance > got.Distance+gap {
					want.Runner, want.RunnerDistance, want.RunnerWithin = -1, 0, false
				}
				if r != want {
					t.Fatalf("%s n=%d: within %v: %+v, want %+v", f.ID, n, gap, r, want)
				}
			}
		}
	}
}

func flat(x []float64) bool {
	for _, v := range x {
		if v != x[0] {
			return false
		}
	}
	return true
}
