package forecast

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mesp-project/mesp/config"
	"github.com/mesp-project/mesp/internal/fixture"
	"github.com/mesp-project/mesp/manifest"
	"github.com/mesp-project/mesp/onnx"
	"github.com/mesp-project/mesp/router"
	"github.com/mesp-project/mesp/silence"
	"github.com/mesp-project/mesp/trace"
)

func editManifest(t *testing.T, dir string, edit func(m *manifest.Manifest)) {
	t.Helper()
	m, err := manifest.ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	edit(&m)
	b, _ := json.Marshal(m)
	os.WriteFile(filepath.Join(dir, "manifest.json"), b, 0o644)
}

func TestLoadSetRefusesBrokenFolders(t *testing.T) {
	if _, err := onnx.Init(config.ORT{}.ORTLibrary()); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		breakIt func(t *testing.T, dir string)
		want    string
	}{
		{"missing ONNX file", func(t *testing.T, dir string) {
			m, _ := manifest.ReadManifest(dir)
			os.Remove(filepath.Join(dir, m.Experts[0].File))
		}, "no such file"},
		{"sha256 mismatch", func(t *testing.T, dir string) {
			editManifest(t, dir, func(m *manifest.Manifest) { m.Experts[1].SHA256 = strings.Repeat("0", 64) })
		}, "sha256"},
		{"wrong input shape", func(t *testing.T, dir string) {
			editManifest(t, dir, func(m *manifest.Manifest) { m.Dense.InputLen += 7 })
		}, "shape"},
		{"unknown cluster", func(t *testing.T, dir string) {
			editManifest(t, dir, func(m *manifest.Manifest) { m.Experts[0].Cluster = 999 })
		}, "cluster 999"},
		{"bad serve value", func(t *testing.T, dir string) {
			editManifest(t, dir, func(m *manifest.Manifest) { m.Experts[0].Serve = "maybe" })
		}, "serve"},
		{"missing clusters file", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "clusters.json"))
		}, "clusters.json"},
		{"re-clustered beside the experts", func(t *testing.T, dir string) {
			// Another clustering's file in place: the experts were not
			// trained on it (a threshold moved is enough).
			cs, _ := manifest.ReadClusters(filepath.Join(dir, "clusters.json"))
			cs.Clusters[0].Threshold += 0.01
			manifest.Write(filepath.Join(dir, "clusters.json"), cs)
		}, "checksum"},
		{"p_invoke model tampered", func(t *testing.T, dir string) {
			m, _ := manifest.ReadManifest(dir)
			os.WriteFile(filepath.Join(dir, m.Dense.PInvoke.File), []byte("not onnx"), 0o644)
		}, "checksum"},
		{"p_invoke expert that does not serve, tampered", func(t *testing.T, dir string) {
			// Not loaded into a session, but still part of the set.
			m, _ := manifest.ReadManifest(dir)
			for _, e := range m.Experts {
				if e.PInvoke != nil && e.PInvoke.Serve != "expert" {
					os.WriteFile(filepath.Join(dir, e.PInvoke.File), []byte("not onnx"), 0o644)
					return
				}
			}
			t.Fatal("the shipped set has no p_invoke expert that serves dense")
		}, "checksum"},
		{"file linked from outside", func(t *testing.T, dir string) {
			m, _ := manifest.ReadManifest(dir)
			p := filepath.Join(dir, m.Experts[0].File)
			b, _ := os.ReadFile(p)
			out := filepath.Join(t.TempDir(), "x.onnx")
			os.WriteFile(out, b, 0o644)
			os.Remove(p)
			os.Symlink(out, p)
		}, "outside"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := fixture.CopyModels(t)
			tc.breakIt(t, dir)
			s, err := LoadSet(dir, onnx.Options{}, Batching{})
			if err == nil {
				s.close()
				t.Fatal("loaded a broken folder")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

// Only p_invoke experts that serve get a session: the others never answer.
func TestOnlyServedPInvokeExpertsAreLoaded(t *testing.T) {
	s := loadShipped(t)
	defer s.close()
	served := 0
	for _, e := range s.Manifest.Experts {
		_, loaded := s.PExperts[e.Cluster]
		if want := e.PInvoke != nil && e.PInvoke.Serve == "expert"; loaded != want {
			t.Errorf("cluster %d: p_invoke expert loaded %v, serves %v", e.Cluster, loaded, want)
		}
		if loaded {
			served++
		}
		want, wantKind := s.PDense, "dense"
		if loaded {
			want, wantKind = s.PExperts[e.Cluster], "expert"
		}
		if m, kind := s.ServedPInvoke(router.Route{Cluster: e.Cluster}); m == nil || m != want || kind != wantKind {
			t.Errorf("cluster %d: p_invoke answered by %v (%s), want the %s model", e.Cluster, m, kind, wantKind)
		}
	}
	if served == 0 || served == len(s.Manifest.Experts) {
		t.Fatalf("%d of %d p_invoke experts serve: the shipped set should have both kinds", served, len(s.Manifest.Experts))
	}
}

func TestForecastRoutesAndValidates(t *testing.T) {
	if _, err := onnx.Init(config.ORT{}.ORTLibrary()); err != nil {
		t.Fatal(err)
	}
	f := New(fixture.CopyModels(t), onnx.Options{IntraOpThreads: 1}, Batching{})
	if _, err := f.Forecast(context.Background(), []Request{{ID: "x", Counts: make([]float64, 600)}}, Routed); !errors.Is(err, ErrNotReady) {
		t.Fatalf("before load: %v, want ErrNotReady", err)
	}
	set, err := f.Reload()
	if err != nil {
		t.Fatal(err)
	}
	counts := make([]float64, 1300)
	for i := range counts {
		counts[i] = float64(i%60) + 3
	}
	res, err := f.Forecast(context.Background(), []Request{{ID: "a", Counts: counts}}, Routed)
	if err != nil {
		t.Fatal(err)
	}
	m, kind := set.ServedModel(routeOf(t, set, counts))
	if res[0].Model != m.ID || res[0].Kind != kind || len(res[0].Forecast) != manifest.Horizon {
		t.Fatalf("answered by %s/%s, router says %s/%s", res[0].Model, res[0].Kind, m.ID, kind)
	}
	dense, err := f.Forecast(context.Background(), []Request{{ID: "a", Counts: counts}}, DenseOnly)
	if err != nil || dense[0].Model != set.Dense.ID {
		t.Fatalf("dense-only answered by %v (%v)", dense[0].Model, err)
	}
	bad := [][]float64{make([]float64, set.MaxInputLen-1), make([]float64, 1441), append(make([]float64, 599), -1)}
	for _, c := range bad {
		if _, err := f.Forecast(context.Background(), []Request{{ID: "b", Counts: c}}, Routed); !errors.Is(err, ErrInvalid) {
			t.Errorf("%d counts: err %v, want ErrInvalid", len(c), err)
		}
	}
	if _, err := f.ForecastModel(context.Background(), []Request{{ID: "a", Counts: counts}}, "cluster-404"); !errors.Is(err, ErrUnknownModel) {
		t.Errorf("unknown model: %v", err)
	}
}

func routeOf(t *testing.T, s *Set, counts []float64) router.Route {
	t.Helper()
	r, err := s.Router.Route(context.Background(), counts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestBatchEqualsSingles: a batch (routed over all cores) answers every
// function as it would be answered alone, in request order.
func TestBatchEqualsSingles(t *testing.T) {
	f, fns := readyForecaster(t, fixture.CopyModels(t))
	reqs := make([]Request, 50)
	for i := range reqs {
		reqs[i] = Request{ID: fns[i].ID, Counts: fns[i].Counts[200+i:]}
	}
	batch, err := f.Forecast(context.Background(), reqs, Routed)
	if err != nil {
		t.Fatal(err)
	}
	clusters := map[int]bool{}
	for i, r := range reqs {
		one, err := f.Forecast(context.Background(), []Request{r}, Routed)
		if err != nil {
			t.Fatal(err)
		}
		b, o := batch[i], one[0]
		if b.ID != o.ID || b.Cluster != o.Cluster || b.Distance != o.Distance || b.Model != o.Model {
			t.Fatalf("function %d: batch %+v, alone %+v", i, b, o)
		}
		for h := range o.Forecast {
			if d, v := float64(b.Forecast[h]-o.Forecast[h]), float64(o.Forecast[h]); math.Abs(d) > 1e-4*math.Max(1, math.Abs(v)) {
				t.Fatalf("function %d minute %d: batch %v, alone %v", i, h, b.Forecast[h], o.Forecast[h])
			}
		}
		clusters[b.Cluster] = true
	}
	if len(clusters) < 3 {
		t.Errorf("only clusters %v: the batch does not mix experts", clusters)
	}
}

// TestRunsAreForecastsWork: the runs handed to the raw ONNX Runtime
// benchmark are the ones Forecast makes: every request in the run of the
// model that answers it, and of its soft-routing runner-up's where it is
// blended, and predicting them gives its forecasts (count trees that read
// the dense p_invoke features included: the dense graph's run over their
// rows comes before them).
func TestRunsAreForecastsWork(t *testing.T) {
	sets := []struct {
		name string
		dir  func(testing.TB) string
	}{
		{"shipped", fixture.CopyModels},
		{"trees that read the dense features", func(tb testing.TB) string { return fixture.CopyModelsWithFeatureTrees(tb, 0.3) }},
	}
	for _, set := range sets {
		t.Run(set.name, func(t *testing.T) {
			f, fns := readyForecaster(t, set.dir(t))
			reqs := make([]Request, 64)
			for i := range reqs {
				reqs[i] = Request{ID: fns[i].ID, Counts: fns[i].Counts[:1200-i]}
			}
			ctx := context.Background()
			want, err := f.Forecast(ctx, reqs, Routed)
			if err != nil {
				t.Fatal(err)
			}
			s, release, err := f.Acquire()
			if err != nil {
				t.Fatal(err)
			}
			defer release()
			for _, mode := range []Mode{Routed, DenseOnly} {
				runs, err := s.Runs(ctx, reqs, mode)
				if err != nil {
					t.Fatal(err)
				}
				if mode == DenseOnly {
					if len(runs) != 1 || runs[0].Model != s.Dense || runs[0].Rows != len(reqs) {
						t.Fatalf("dense only: %d runs, want one of every row through dense", len(runs))
					}
					continue
				}
				// Each request's rows, in run order: rows keep request order
				// within a run, so the k-th row of a model's run is the k-th
				// request that model answers.
				byModel := map[*onnx.Model][]int{}
				for i, r := range want {
					byModel[s.Model(r.Model)] = append(byModel[s.Model(r.Model)], i)
				}
				for i, r := range want {
					if r.Blend != nil {
						byModel[s.Model(r.Blend.Model)] = append(byModel[s.Model(r.Blend.Model)], i)
					}
				}
				for i, r := range want {
					if r.Trees != nil && s.Trees.TakesFeatures {
						byModel[s.PDense] = append(byModel[s.PDense], i)
					}
				}
				for i, r := range want {
					if r.Trees != nil {
						byModel[s.Model(r.Trees.Model)] = append(byModel[s.Model(r.Trees.Model)], i)
					}
				}
				for i, r := range want {
					if r.Mean != nil {
						byModel[s.Model(r.Mean.Model)] = append(byModel[s.Model(r.Mean.Model)], i)
					}
				}
				var upper *onnx.Model // the graph of the expected count's quantile
				if e := s.Manifest.Expected; e != nil {
					upper = s.Quantiles[s.Manifest.Level(e.Quantile)]
				}
				for i, r := range want {
					if r.Upper != nil {
						byModel[upper] = append(byModel[upper], i)
					}
				}
				outputs := map[int][][]float32{} // request -> its model outputs, nearest first
				rows := 0
				for _, run := range runs {
					y, err := run.Model.PredictDense(ctx, run.Input, run.Second, run.Rows)
					if err != nil {
						t.Fatal(err)
					}
					idx := byModel[run.Model]
					if len(idx) < run.Rows {
						t.Fatalf("a run of %s with %d rows; Forecast has %d requests for it", run.Model.ID, run.Rows, len(idx))
					}
					for r, i := range idx[:run.Rows] {
						if run.Model != s.PDense { // the features' run: no count output
							outputs[i] = append(outputs[i], y[r*run.Model.Width():r*run.Model.Width()+manifest.Horizon])
						}
					}
					byModel[run.Model] = idx[run.Rows:]
					rows += run.Rows
				}
				blended := 0
				for i, r := range want {
					n := 1
					if r.Blend != nil {
						n, blended = 2, blended+1
					}
					if (s.Trees != nil) != (r.Trees != nil) {
						t.Fatalf("request %d: trees %+v with the set's trees %v", i, r.Trees, s.Trees != nil)
					}
					if r.Trees != nil {
						n++
					}
					if r.Mean != nil {
						n++
					}
					if r.Upper != nil {
						n++
					}
					if len(outputs[i]) != n {
						t.Fatalf("request %d in %d runs, want %d", i, len(outputs[i]), n)
					}
					if want := WholeInvocations(r.Level); !slices.Equal(r.Median, want) {
						t.Fatalf("request %d: Median %v is not Level rounded (%v)", i, r.Median, want)
					}
					if r.Mean == nil && r.Upper == nil && r.Sparse == nil && !slices.Equal(r.Forecast, r.Median) {
						t.Fatalf("request %d: no mean trees or upper share, yet Forecast %v is not the median", i, r.Forecast)
					}
					for h, v := range r.Level {
						got := float64(outputs[i][0][h])
						if r.Blend != nil {
							got = (1-r.Blend.Weight)*got + r.Blend.Weight*float64(outputs[i][1][h])
						}
						if r.Trees != nil {
							k := n - 1
							if r.Mean != nil {
								k--
							}
							if r.Upper != nil {
								k--
							}
							got = (1-r.Trees.Weight)*got + r.Trees.Weight*float64(outputs[i][k][h])
						}
						if v := float64(v); math.Abs(got-v) > 1e-4*math.Max(1, math.Abs(v)) {
							t.Fatalf("request %d minute %d: runs give %v, Level %v", i, h, got, v)
						}
					}
				}
				if s.Manifest.Routing != nil && blended == 0 {
					t.Fatal("soft routing is on, yet Forecast blended no request")
				}
			}
		})
	}
}

// withAndWithoutTrees serves the set in dir twice: as it is, and with
// router.count_trees off (closed when the test ends).
func withAndWithoutTrees(t *testing.T, dir string) (with, without *Forecaster, fns []trace.Function) {
	t.Helper()
	with, fns = readyForecaster(t, dir)
	without = New(dir, onnx.Options{IntraOpThreads: 1}, Batching{})
	without.SkipTrees, without.SkipTimers = true, true
	if _, err := without.Reload(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { without.Close() })
	return with, without, fns
}

// TestSkipUpperServesTheMedian: with router.upper_share off, a set with an
// expected entry serves the median for the forecast, as a set without the
// entry does, and still answers its quantiles.
func TestSkipUpperServesTheMedian(t *testing.T) {
	dir := fixture.CopyModels(t)
	fixture.EditManifest(t, dir, func(m map[string]any) {
		delete(m, "sparse") // the sparse rule answers small functions apart
		m["expected"] = map[string]any{"quantile": 0.9, "share": 0.3}
	})
	with, fns := readyForecaster(t, dir)
	without := New(dir, onnx.Options{IntraOpThreads: 1}, Batching{})
	without.SkipUpper, without.SkipTimers = true, true
	if _, err := without.Reload(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(without.Close)
	if c, _ := without.Catalog(); c.Manifest.Expected != nil || len(c.Manifest.Quantiles) == 0 {
		t.Fatalf("served without the upper share: expected %+v, %d quantile levels", c.Manifest.Expected, len(c.Manifest.Quantiles))
	}
	_, a, b := forecastBoth(t, with, without, fns)
	raised := 0
	for i := range a {
		if a[i].Upper != nil {
			raised++
		}
		if b[i].Upper != nil || !slices.Equal(b[i].Forecast, b[i].Median) || !slices.Equal(a[i].Median, b[i].Median) {
			t.Fatalf("%s: without the upper share: upper %+v, forecast %v, median %v (with it: median %v)", b[i].ID, b[i].Upper, b[i].Forecast[:4], b[i].Median[:4], a[i].Median[:4])
		}
	}
	if raised == 0 {
		t.Fatal("no forecast raised with the upper share on: nothing compared")
	}
}

// TestSkipTreesServesTheRoutedForecast: with router.count_trees off, a
// forecast is the routed one alone: the answer with the trees is (1 - w)
// times it plus w times the trees' own forecast.
func TestSkipTreesServesTheRoutedForecast(t *testing.T) {
	with, without, fns := withAndWithoutTrees(t, fixture.CopyModelsWithTrees(t, 0.3))
	reqs, a, b := forecastBoth(t, with, without, fns)
	ctx := context.Background()
	if c, _ := without.Catalog(); c.Manifest.Trees != nil || c.InputLens["dense-trees"] != 0 {
		t.Fatal("a set served without trees still lists them")
	}
	s, release, err := with.Acquire()
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	in := make([]float32, 0, len(reqs)*s.Trees.InputLen)
	for _, r := range reqs {
		in = appendInput(in, r.Counts, s.Trees.InputLen)
	}
	trees, err := s.Trees.Predict(ctx, in, len(reqs))
	if err != nil {
		t.Fatal(err)
	}
	differ := 0
	for i := range reqs {
		if b[i].Trees != nil || a[i].Trees == nil {
			t.Fatalf("request %d: trees %+v with, %+v without", i, a[i].Trees, b[i].Trees)
		}
		w := a[i].Trees.Weight
		for h := range a[i].Level {
			want := (1-w)*float64(b[i].Level[h]) + w*float64(trees[i*manifest.Horizon+h])
			if got := float64(a[i].Level[h]); math.Abs(got-want) > 1e-4*math.Max(1, math.Abs(want)) {
				t.Fatalf("request %d minute %d: with trees %v, without blended by hand %v", i, h, got, want)
			}
			if a[i].Level[h] != b[i].Level[h] {
				differ++
			}
		}
	}
	if differ == 0 {
		t.Fatal("the trees changed no forecast")
	}
}

// TestCountTreesReadTheDenseFeatures: count trees that read the dense
// p_invoke features get, for every request, the features the set's dense
// graph answers for its day (up to a day, left-padded as unknown), whether
// p_invoke is asked for or not; the answer is the routed forecast blended
// with them, and the trees' own route answers the same.
func TestCountTreesReadTheDenseFeatures(t *testing.T) {
	with, without, fns := withAndWithoutTrees(t, fixture.CopyModelsWithFeatureTrees(t, 0.3))
	reqs := make([]Request, 24)
	for i := range reqs {
		// from 4 hours to a whole day: the shorter are padded
		n := 240 + i*50
		reqs[i] = Request{ID: fns[i].ID, Counts: fns[i].Counts[1440-n:]}
	}
	ctx := context.Background()
	counts, err := with.Predict(ctx, reqs, Routed, Counts)
	if err != nil {
		t.Fatal(err)
	}
	both, err := with.Predict(ctx, reqs, Routed, Counts|PInvoke)
	if err != nil {
		t.Fatal(err)
	}
	routed, err := without.Forecast(ctx, reqs, Routed)
	if err != nil {
		t.Fatal(err)
	}
	s, release, err := with.Acquire()
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if !s.Trees.TakesFeatures || s.Trees.SecondWidth != s.PDense.Features || s.PDense.Features == 0 {
		t.Fatalf("trees take the features %v, %d values; the dense graph answers %d", s.Trees.TakesFeatures, s.Trees.SecondWidth, s.PDense.Features)
	}
	// By hand: the window, and the dense graph's features of the day padded
	// with Missing; and of the day unknown but for the window, to show the
	// rest of it is read.
	features := func(days []float32) []float32 {
		y, err := s.PDense.Predict(ctx, days, len(reqs))
		if err != nil {
			t.Fatal(err)
		}
		var f []float32
		for r := range reqs {
			f = append(f, y[r*s.PDense.Width()+s.PDense.Horizon:(r+1)*s.PDense.Width()]...)
		}
		return f
	}
	var windowIn, dayIn, unknown []float32
	for _, r := range reqs {
		windowIn = appendInput(windowIn, r.Counts, s.Trees.InputLen)
		dayIn = appendPInvokeInput(dayIn, r.Counts, manifest.PInvokeInputLen)
		unknown = appendPInvokeInput(unknown, r.Counts[len(r.Counts)-s.Trees.InputLen:], manifest.PInvokeInputLen)
	}
	trees, err := s.Trees.PredictDense(ctx, windowIn, features(dayIn), len(reqs))
	if err != nil {
		t.Fatal(err)
	}
	blind, err := s.Trees.PredictDense(ctx, windowIn, features(unknown), len(reqs))
	if err != nil {
		t.Fatal(err)
	}
	own, err := with.ForecastModel(ctx, reqs, s.Trees.ID)
	if err != nil {
		t.Fatal(err)
	}
	read := 0 // minutes where the rest of the day changes the trees' answer
	for i := range reqs {
		if counts[i].Trees == nil || counts[i].Trees.Weight != 0.3 {
			t.Fatalf("request %d: trees %+v, want the set's at 0.3", i, counts[i].Trees)
		}
		if both[i].PInvoke == nil {
			t.Fatalf("request %d: no p_invoke with both outputs", i)
		}
		for h := range counts[i].Level {
			tr := float64(trees[i*manifest.Horizon+h])
			want := 0.7*float64(routed[i].Level[h]) + 0.3*tr
			for name, got := range map[string]float32{"counts": counts[i].Level[h], "counts and p_invoke": both[i].Level[h]} {
				if math.Abs(float64(got)-want) > 1e-4*math.Max(1, math.Abs(want)) {
					t.Fatalf("request %d minute %d (%s): level %v, blended by hand %v", i, h, name, got, want)
				}
			}
			if got := float64(own[i].Forecast[h]); math.Abs(got-tr) > 1e-4*math.Max(1, tr) {
				t.Fatalf("request %d minute %d: the trees' route %v, by hand %v", i, h, got, tr)
			}
			if math.Abs(tr-float64(blind[i*manifest.Horizon+h])) > 1e-3 {
				read++
			}
		}
	}
	if read == 0 {
		t.Fatal("the trees answer the same without the rest of the day: the test does not show it is read")
	}
}

// TestShortPatternsAreServedWithoutTrees: the count trees do not raise the
// shortest pattern served; a pattern shorter than their window gets the
// routed forecast alone, in the same batch as longer ones that get the
// trees.
func TestShortPatternsAreServedWithoutTrees(t *testing.T) {
	with, without, fns := withAndWithoutTrees(t, fixture.CopyModelsWithFeatureTrees(t, 0.3))
	s, release, err := with.Acquire()
	if err != nil {
		t.Fatal(err)
	}
	window := s.Trees.InputLen
	if s.MaxInputLen >= window {
		release()
		t.Fatalf("shortest pattern served %d, the trees' window %d: the test needs shorter count models", s.MaxInputLen, window)
	}
	lens := []int{s.MaxInputLen, window - 1, window, 900}
	release()
	reqs := make([]Request, len(lens))
	for i, n := range lens {
		reqs[i] = Request{ID: fns[i].ID, Counts: fns[i].Counts[1200-n : 1200]}
	}
	ctx := context.Background()
	got, err := with.Forecast(ctx, reqs, Routed)
	if err != nil {
		t.Fatal(err)
	}
	alone, err := without.Forecast(ctx, reqs, Routed)
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range lens {
		if (got[i].Trees != nil) != (n >= window) {
			t.Fatalf("%d minutes: trees %+v, want them only from %d minutes", n, got[i].Trees, window)
		}
		if n >= window {
			continue
		}
		for h, v := range alone[i].Level {
			if d := math.Abs(float64(got[i].Level[h] - v)); d > 1e-4*math.Max(1, math.Abs(float64(v))) {
				t.Fatalf("%d minutes, minute %d: level %v, the routed forecast alone %v", n, h, got[i].Level[h], v)
			}
		}
	}
}

// TestFeatureTreesMustBeFedTheirFeatures: a manifest entry and its graph
// agree on whether the trees read the dense p_invoke features, those are
// the features of the graph the trees were fitted on, and trees of the
// older layout (the day in) are refused with the way to the current one;
// or the set is refused.
func TestFeatureTreesMustBeFedTheirFeatures(t *testing.T) {
	if _, err := onnx.Init(config.ORT{}.ORTLibrary()); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		dir  func(t *testing.T) string
		want string
	}{
		{"said to read the features, takes the window alone", func(t *testing.T) string {
			dir := fixture.CopyModelsWithTrees(t, 0.3)
			editManifest(t, dir, func(m *manifest.Manifest) {
				m.Trees.DenseFeatures = true
				m.Trees.FeaturesOf = &manifest.FeaturesOf{Model: m.Dense.PInvoke.ID, SHA256: m.Dense.PInvoke.SHA256}
			})
			return dir
		}, "reads the dense p_invoke features"},
		{"reads the features, said to take the window alone", func(t *testing.T) string {
			dir := fixture.CopyModelsWithFeatureTrees(t, 0.3)
			editManifest(t, dir, func(m *manifest.Manifest) { m.Trees.DenseFeatures, m.Trees.FeaturesOf = false, nil })
			return dir
		}, "2 tensors"},
		{"fitted on another dense graph's features", func(t *testing.T) string {
			dir := fixture.CopyModelsWithFeatureTrees(t, 0.3)
			editManifest(t, dir, func(m *manifest.Manifest) { m.Trees.FeaturesOf.SHA256 = strings.Repeat("ab", 32) })
			return dir
		}, "another dense p_invoke graph"},
		{"features of no graph named", func(t *testing.T) string {
			dir := fixture.CopyModelsWithFeatureTrees(t, 0.3)
			editManifest(t, dir, func(m *manifest.Manifest) { m.Trees.FeaturesOf = nil })
			return dir
		}, "features_of"},
		{"the older layout, the day in", func(t *testing.T) string {
			dir := fixture.CopyModels(t)
			editManifest(t, dir, func(m *manifest.Manifest) { m.Trees.DenseFeatures, m.Trees.Day = false, true })
			return dir
		}, "scripts/share_dense_features.py"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := LoadSet(tc.dir(t), onnx.Options{IntraOpThreads: 1}, Batching{})
			if err == nil {
				s.close()
				t.Fatal("loaded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

// TestTamperedCountTreesFailTheLoad: the count trees are verified like
// every file of the set.
func TestTamperedCountTreesFailTheLoad(t *testing.T) {
	dir := fixture.CopyModelsWithTrees(t, 0.3)
	if _, err := onnx.Init(config.ORT{}.ORTLibrary()); err != nil {
		t.Fatal(err)
	}
	if s, err := LoadSet(dir, onnx.Options{IntraOpThreads: 1}, Batching{}); err != nil {
		t.Fatalf("the set with its trees: %v", err)
	} else {
		s.Close()
	}
	os.WriteFile(filepath.Join(dir, "dense-trees.onnx"), []byte("not onnx"), 0o644)
	if _, err := LoadSet(dir, onnx.Options{IntraOpThreads: 1}, Batching{}); err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Fatalf("tampered trees: %v, want a checksum error", err)
	}
}

// TestWholeInvocations: the served count is the level rounded to the
// nearest whole invocation, halves up, never negative, the level untouched.
func TestWholeInvocations(t *testing.T) {
	for _, c := range []struct {
		level, want []float32
	}{
		{[]float32{0, 0.49, 0.5, 0.51, 1.49, 2.5}, []float32{0, 0, 1, 1, 1, 3}},
		{[]float32{-0.7, -0.2, 1234.4999, 1234.5}, []float32{0, 0, 1234, 1235}},
		{[]float32{}, []float32{}},
	} {
		in := slices.Clone(c.level)
		if got := WholeInvocations(c.level); !slices.Equal(got, c.want) {
			t.Errorf("WholeInvocations(%v) = %v, want %v", c.level, got, c.want)
		}
		if !slices.Equal(in, c.level) {
			t.Errorf("WholeInvocations changed its input to %v", c.level)
		}
	}
}

// TestMeanTreesGiveTheExpectedCount: with mean trees the forecast is the
// expected count, (1 - w) times the level plus w times the hour the mean
// trees answer, spread as the level shapes the hour, not rounded; the
// median is the level in whole invocations, as the forecast was before;
// without them (and without an expected entry) the forecast is the
// median.
func TestMeanTreesGiveTheExpectedCount(t *testing.T) {
	// without the sparse rule, which answers small functions' expected
	// count apart (TestSparseFunctionsExpectedCountIsPInvokeTimesTheirSize)
	noSparse := func(dir string) string {
		fixture.EditManifest(t, dir, func(m map[string]any) { delete(m, "sparse") })
		return dir
	}
	// the mean trees alone, without the share of the upper quantile
	// (TestExpectedCountAddsAShareOfTheUpperQuantile)
	meanOnly := func(dir string) string {
		fixture.EditManifest(t, dir, func(m map[string]any) { delete(m, "expected") })
		return dir
	}
	with, fns := readyForecaster(t, meanOnly(noSparse(fixture.CopyModelsWithMeanTrees(t, 0.6))))
	without, _ := readyForecaster(t, noSparse(fixture.CopyModelsWithoutMean(t)))
	reqs, a, b := forecastBoth(t, with, without, fns)
	ctx := context.Background()
	trees, err := with.ForecastModel(ctx, reqs, "dense-trees-mean")
	if err != nil {
		t.Fatal(err)
	}
	fractional, withMean := 0, 0
	cat, _ := with.Catalog()
	for i := range a {
		if g, unprecedented := silence.Gap(reqs[i].Counts); unprecedented && g >= cat.Manifest.Silence.MinGap {
			// in a silence no day shows: the level, as p_invoke is the hazard's
			if a[i].Mean != nil || !slices.Equal(a[i].Forecast, a[i].Median) {
				t.Fatalf("%s: silent %d minutes, yet mean %+v", a[i].ID, g, a[i].Mean)
			}
			continue
		}
		withMean++
		if a[i].Mean == nil || a[i].Mean.Weight != 0.6 || a[i].Mean.Model != "dense-trees-mean" {
			t.Fatalf("%s: mean %+v", a[i].ID, a[i].Mean)
		}
		if !slices.Equal(a[i].Median, b[i].Forecast) || !slices.Equal(a[i].Median, WholeInvocations(a[i].Level)) {
			t.Fatalf("%s: the median differs from the forecast without mean trees", a[i].ID)
		}
		if !slices.Equal(b[i].Median, b[i].Forecast) || b[i].Mean != nil {
			t.Fatalf("%s: without mean trees the forecast is not the median", b[i].ID)
		}
		var total, volume float64
		for h := range a[i].Level {
			total += float64(a[i].Level[h])
			volume += float64(trees[i].Forecast[h])
		}
		for h := range a[i].Forecast {
			hour := float64(trees[i].Forecast[h]) // even shares where the level is under half an invocation
			if total > 0.5 {
				hour = float64(a[i].Level[h]) * volume / total
			}
			want := 0.4*float64(a[i].Level[h]) + 0.6*hour
			if math.Abs(float64(a[i].Forecast[h])-want) > 1e-4*max(1, want) {
				t.Fatalf("%s minute %d: forecast %v, want %v", a[i].ID, h, a[i].Forecast[h], want)
			}
			if a[i].Forecast[h] != float32(math.Round(float64(a[i].Forecast[h]))) {
				fractional++
			}
		}
	}
	if fractional == 0 || withMean < len(a)/2 {
		t.Fatalf("%d of %d with mean trees, %d fractional minutes", withMean, len(a), fractional)
	}
}

// TestExpectedCountAddsAShareOfTheUpperQuantile: with an expected entry
// (manifest.Expected) the forecast of every row the quantile trees answer
// is the level plus the share of how far the served quantile lies above
// it, minute by minute; the median and the quantiles stay what they are at
// share 0, where the forecast is the level itself, not rounded; rows the
// quantile trees leave (a silence no day shows) keep the median.
func TestExpectedCountAddsAShareOfTheUpperQuantile(t *testing.T) {
	at := func(share float64) *Forecaster {
		dir := fixture.CopyModelsWithoutMean(t)
		fixture.EditManifest(t, dir, func(m map[string]any) {
			delete(m, "sparse") // small functions' expected count is the sparse rule's, apart
			m["expected"] = map[string]any{"quantile": 0.9, "share": share}
		})
		f, _ := readyForecaster(t, dir)
		return f
	}
	fns := fixture.Rows(t)
	reqs := make([]Request, 40)
	for i := range reqs {
		reqs[i] = Request{ID: fns[i].ID, Counts: fns[i].Counts[:1200]}
	}
	busiest, most := 0, 0.0 // its every gap short: 5 silent hours are a silence no day of it shows
	for i := range fns {
		var total float64
		for _, v := range fns[i].Counts[:900] {
			total += v
		}
		if total > most {
			busiest, most = i, total
		}
	}
	reqs[39].Counts = append(slices.Clone(fns[busiest].Counts[:900]), make([]float64, 300)...)
	ctx := context.Background()
	zero, err := at(0).PredictUpTo(ctx, reqs, Routed, Counts|Quantiles, 0.9)
	if err != nil {
		t.Fatal(err)
	}
	raised, err := at(0.3).PredictUpTo(ctx, reqs, Routed, Counts|Quantiles, 0.9)
	if err != nil {
		t.Fatal(err)
	}
	up, plain := 0, 0
	for i := range reqs {
		z, r := zero[i], raised[i]
		if !slices.Equal(z.Median, r.Median) || !slices.Equal(z.Level, r.Level) {
			t.Fatalf("%s: the median or the level moved with the share", r.ID)
		}
		q, ok := QuantileAt(z.QuantileSeries(), 0.9)
		if !ok {
			t.Fatalf("%s: no q0.9", r.ID)
		}
		if r.Upper == nil {
			plain++
			if z.Upper != nil || !slices.Equal(r.Forecast, r.Median) {
				t.Fatalf("%s: no share applied, yet forecast %v is not the median %v", r.ID, r.Forecast[:5], r.Median[:5])
			}
			continue
		}
		up++
		if *r.Upper != (UpperShare{Quantile: 0.9, Share: 0.3}) || !slices.Equal(z.Forecast, z.Level) {
			t.Fatalf("%s: upper %+v; at share 0 the forecast is not the level", r.ID, r.Upper)
		}
		var above float64
		for h := range r.Forecast {
			d := max(q[h]-r.Level[h], 0)
			above += float64(d)
			if want := r.Level[h] + float32(0.3*float64(d)); r.Forecast[h] != want {
				t.Fatalf("%s minute %d: forecast %v, want level %v + 0.3 x %v", r.ID, h, r.Forecast[h], r.Level[h], d)
			}
		}
		if above == 0 {
			t.Fatalf("%s: q0.9 nowhere above the level", r.ID)
		}
	}
	if up < 30 || plain == 0 || raised[39].Upper != nil {
		t.Fatalf("%d rows raised, %d not (the silent one raised: %v)", up, plain, raised[39].Upper != nil)
	}
}

// TestExpectedCountSkipsTheQuantileGraphForSparseRows: a forecast that
// asks for no quantile runs the quantile graph only where the expected
// count reads it, not on the rows the sparse rule answers; its answers
// are the same, row by row, as those of a forecast that asks for the
// quantiles (which runs the graph on every row).
func TestExpectedCountSkipsTheQuantileGraphForSparseRows(t *testing.T) {
	f, fns := readyForecaster(t, fixture.CopyModels(t))
	if c, _ := f.Catalog(); c.Manifest.Expected == nil || c.Manifest.Sparse == nil {
		t.Skip("the shipped set has no expected entry or no sparse rule")
	}
	reqs := make([]Request, 64)
	for i := range reqs {
		reqs[i] = Request{ID: fns[i].ID, Counts: fns[i].Counts[:1200-7*i]}
	}
	ctx := context.Background()
	counts, err := f.Predict(ctx, reqs, Routed, Counts)
	if err != nil {
		t.Fatal(err)
	}
	both, err := f.PredictUpTo(ctx, reqs, Routed, Counts|Quantiles, 0.9)
	if err != nil {
		t.Fatal(err)
	}
	sparse, upper := 0, 0
	for i := range reqs {
		a, b := counts[i], both[i]
		if !slices.Equal(a.Forecast, b.Forecast) || !slices.Equal(a.Median, b.Median) ||
			(a.Upper == nil) != (b.Upper == nil) || (a.Sparse == nil) != (b.Sparse == nil) {
			t.Fatalf("%s: counts alone %v (upper %+v, sparse %+v), with quantiles %v (upper %+v, sparse %+v)",
				a.ID, a.Forecast[:3], a.Upper, a.Sparse, b.Forecast[:3], b.Upper, b.Sparse)
		}
		if a.Sparse != nil {
			sparse++
		}
		if a.Upper != nil {
			upper++
		}
	}
	if sparse == 0 || upper == 0 {
		t.Fatalf("%d sparse rows, %d with the upper share: nothing compared", sparse, upper)
	}
	s, release, err := f.Acquire()
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	runs, err := s.Runs(ctx, reqs, Routed)
	if err != nil {
		t.Fatal(err)
	}
	graph := s.Quantiles[s.Manifest.Level(s.Manifest.Expected.Quantile)]
	for _, r := range runs {
		if r.Model == graph && r.Rows != upper {
			t.Fatalf("the quantile graph runs %d rows for the expected count; %d answers carry its share", r.Rows, upper)
		}
	}
}

func TestShapeHourByHand(t *testing.T) {
	cases := []struct {
		name              string
		level, hour, want []float32
	}{
		{"spread as the level", []float32{1, 0, 3}, []float32{2, 2, 2}, []float32{1.5, 0, 4.5}},
		{"a level under half an invocation keeps the even shares", []float32{0.2, 0.1, 0.1}, []float32{1, 1, 1}, []float32{1, 1, 1}},
		{"no volume", []float32{1, 2, 3}, []float32{0, 0, 0}, []float32{0, 0, 0}},
	}
	for _, c := range cases {
		h := slices.Clone(c.hour)
		shapeHour(c.level, h)
		if !slices.Equal(h, c.want) {
			t.Errorf("%s: %v, want %v", c.name, h, c.want)
		}
	}
}

// forecastBoth answers the first 24 functions' first 1,200 minutes routed
// by two forecasters.
func forecastBoth(t *testing.T, with, without *Forecaster, fns []trace.Function) (reqs []Request, a, b []Result) {
	t.Helper()
	reqs = make([]Request, 24)
	for i := range reqs {
		reqs[i] = Request{ID: fns[i].ID, Counts: fns[i].Counts[:1200]}
	}
	var err error
	if a, err = with.Forecast(context.Background(), reqs, Routed); err != nil {
		t.Fatal(err)
	}
	if b, err = without.Forecast(context.Background(), reqs, Routed); err != nil {
		t.Fatal(err)
	}
	return reqs, a, b
}

// TestStopModelAnswersTheNextMinute: a set with a stop model (here one
// split: idle more than 5 minutes, logit -6; else +3) answers the next
// minute with it on the p_invoke served without it and scales the later
// minutes by the chance it gives that the function still runs; the
// counts (the sparse rule's p_invoke x size included), and the dense
// baseline, are untouched.
func TestStopModelAnswersTheNextMinute(t *testing.T) {
	dir := fixture.CopyModels(t)
	stump := silence.StopModel{Features: silence.StopFeatures, Trees: []silence.StopTree{{
		SplitFeature: []int{1}, Threshold: []float64{math.Log(6)}, LeftChild: []int{-1}, RightChild: []int{-2}, LeafValue: []float64{3, -6}}}}
	fixture.EditManifest(t, dir, func(m map[string]any) { m["stop"] = stump })
	with, fns := readyForecaster(t, dir)
	without := New(dir, onnx.Options{IntraOpThreads: 1}, Batching{})
	without.SkipStop, without.SkipTimers = true, with.SkipTimers
	if _, err := without.Reload(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(without.Close)
	reqs := make([]Request, 24)
	for i := range reqs {
		c := slices.Clone(fns[i].Counts[:1200])
		if i%2 == 0 {
			clear(c[1100:]) // stopped 100 minutes ago
		}
		reqs[i] = Request{ID: fns[i].ID, Counts: c}
	}
	ctx := context.Background()
	for _, mode := range []Mode{Routed, DenseOnly} {
		a, err := with.Predict(ctx, reqs, mode, PInvoke|Counts)
		if err != nil {
			t.Fatal(err)
		}
		b, err := without.Predict(ctx, reqs, mode, PInvoke|Counts)
		if err != nil {
			t.Fatal(err)
		}
		lowered, raised, sparseLowered := 0, 0, 0
		for i := range a {
			if !slices.Equal(a[i].Forecast, b[i].Forecast) {
				t.Fatalf("%s (mode %v): the stop model changed the counts: %v, without %v (sparse %+v)", a[i].ID, mode, a[i].Forecast[:5], b[i].Forecast[:5], a[i].Sparse)
			}
			if mode == DenseOnly {
				if a[i].Stop != nil || !slices.Equal(a[i].PInvoke, b[i].PInvoke) {
					t.Fatalf("%s: the dense baseline went through the stop model", a[i].ID)
				}
				continue
			}
			p := float64(b[i].PInvoke[0])
			x := silence.StopInputs(reqs[i].Counts, p)
			q := stump.P(x)
			if a[i].Stop == nil || a[i].Stop.PInvokeBefore != b[i].PInvoke[0] || a[i].PInvoke[0] != float32(q) {
				t.Fatalf("%s: next minute %v (stop %+v), want %v from %v", a[i].ID, a[i].PInvoke[0], a[i].Stop, q, p)
			}
			// the later minutes: scaled by the chance it still runs, read
			// at p_invoke max(p, 0.01): the stump's logistic there, over it
			ref := max(p, silence.StopReferenceP)
			scale := float32(min(1, stump.P(append([]float64{math.Log(ref / (1 - ref))}, x[1:]...))/ref))
			if scale < 1 {
				lowered++
			} else {
				raised++
			}
			if a[i].Sparse != nil && scale < 1 {
				sparseLowered++
			}
			for h := 1; h < len(a[i].PInvoke); h++ {
				if want := b[i].PInvoke[h] * scale; a[i].PInvoke[h] != want {
					t.Fatalf("%s minute %d: %v, want %v", a[i].ID, h, a[i].PInvoke[h], want)
				}
			}
		}
		if mode == Routed && (lowered == 0 || raised == 0 || sparseLowered == 0) {
			t.Fatalf("%d answers scaled down (%d answered by the sparse rule), %d not: each must be checked", lowered, sparseLowered, raised)
		}
	}
}
