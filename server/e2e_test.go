package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mesp-project/mesp/config"
	"github.com/mesp-project/mesp/forecast"
	"github.com/mesp-project/mesp/internal/fixture"
	"github.com/mesp-project/mesp/manifest"
	"github.com/mesp-project/mesp/onnx"
	"github.com/mesp-project/mesp/periodic"
	"github.com/mesp-project/mesp/server"
	"github.com/mesp-project/mesp/silence"
	"github.com/mesp-project/mesp/trace"
)

type testServer struct {
	URL string
	srv *server.Server
	dir string
}

// start runs the real server on loopback over a copy of the models.
func start(t *testing.T, token string) *testServer {
	t.Helper()
	return startWith(t, func(o *server.Options) { o.AdminToken = token })
}

// startWith is start with options changed by edit.
func startWith(t *testing.T, edit func(*server.Options)) *testServer {
	t.Helper()
	return startServer(t, fixture.CopyModels(t), edit)
}

// startOn serves the models folder dir as it is (no copy).
func startOn(t *testing.T, dir string) *testServer {
	t.Helper()
	return startServer(t, dir, func(*server.Options) {})
}

func startServer(t *testing.T, dir string, edit func(*server.Options)) *testServer {
	t.Helper()
	if _, err := onnx.Init(config.ORT{}.ORTLibrary()); err != nil {
		t.Fatal(err)
	}
	fc := forecast.New(dir, onnx.Options{IntraOpThreads: 1}, forecast.Batching{Wait: 500 * time.Microsecond, MaxRows: 64})
	opts := server.Options{MaxBatch: 64, MaxBodyBytes: 4 << 20, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
	edit(&opts)
	srv := server.New(fc, opts)
	fc.OnRoute = srv.RouteHook(fc.OnRoute)
	if st := srv.Reload("start"); !st.OK {
		t.Fatal(st.Error)
	}
	t.Cleanup(fc.Close) // after the server stops (cleanups run last first)
	return &testServer{URL: serve(t, srv), srv: srv, dir: dir}
}

// serve runs srv on a loopback port until the test ends; it returns the
// base URL.
func serve(t *testing.T, srv *server.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

func fixtureRows(t *testing.T, n int) []trace.Function { return fixture.Rows(t)[:n] }

func post(t *testing.T, url, body string, header ...string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func batchBody(fns []trace.Function, minutes int) string {
	var req server.ForecastRequest
	for _, f := range fns {
		req.Functions = append(req.Functions, server.FunctionCounts{ID: f.ID, Counts: f.Counts[:minutes]})
	}
	b, _ := json.Marshal(req)
	return string(b)
}

func TestForecastMatchesPythonOnnxRuntime(t *testing.T) {
	// The shipped set with count trees that read the dense p_invoke
	// features added: soft routing's blends and the trees' are both
	// checked.
	// The expected count's served quantile comes back beside it (its
	// parity with Python is the quantile tests').
	ts := startOn(t, fixture.AddMeanTrees(t, fixture.CopyModelsWithFeatureTrees(t, 0.3), 0.4))
	fns := fixtureRows(t, 40)
	var req server.ForecastRequest
	for _, f := range fns {
		req.Functions = append(req.Functions, server.FunctionCounts{ID: f.ID, Counts: f.Counts[:1200]})
	}
	req.Outputs = []string{"forecast", "median", "q0.9"}
	reqBody, _ := json.Marshal(req)
	code, body := post(t, ts.URL+"/v1/forecast", string(reqBody))
	if code != http.StatusOK {
		t.Fatalf("%d %s", code, body)
	}
	var resp server.ForecastResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatal(err)
	}
	if len(resp.Forecasts) != len(fns) {
		t.Fatalf("%d forecasts for %d functions", len(resp.Forecasts), len(fns))
	}
	m, err := manifest.ReadManifest(ts.dir)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]manifest.Model{m.Dense.ID: m.Dense}
	for _, e := range m.Experts {
		files[e.ID] = e.Model
	}
	for _, tr := range []*manifest.Trees{m.Trees, m.Mean} {
		if tr != nil {
			files[tr.ID] = tr.Model
		}
	}
	// Every model's output for the rows it answers, in full, in a soft
	// routing blend or as the count trees, from Python onnxruntime on the
	// same rows.
	byModel := map[string][]int{}
	blended, timers := 0, 0
	for i, f := range resp.Forecasts {
		if f.ID != fns[i].ID || len(f.Forecast) != 60 {
			t.Fatalf("forecast %d: id %s, %d values", i, f.ID, len(f.Forecast))
		}
		byModel[f.Model] = append(byModel[f.Model], i)
		if b := f.Blend; b != nil {
			blended++
			byModel[b.Model] = append(byModel[b.Model], i)
			// The weight is the manifest's rule on the two distances.
			if m.Routing == nil || b.Model == f.Model || b.Cluster == f.Cluster || f.OOD || b.Distance < f.Distance ||
				math.Abs(b.Weight-m.Routing.RunnerWeight(f.Distance, b.Distance)) > 1e-12 || b.Weight < m.Routing.MinWeight {
				t.Fatalf("forecast %d: blend %+v of %s (cluster %d, distance %v) against routing %+v", i, b, f.Model, f.Cluster, f.Distance, m.Routing)
			}
		}
		// A timer is answered by the timers' expert: its forecast in phase.
		if f.Timer != nil {
			tm, ok := periodic.Detect(fns[i].Counts[:1200])
			mean, _ := tm.Forecast(fns[i].Counts[:1200], 60)
			for h := range mean {
				if !ok || tm.Period != f.Timer.Period || math.Abs(float64(f.Forecast[h])-mean[h]) > 1e-4*math.Max(1, mean[h]) {
					t.Fatalf("forecast %d: timer %+v answers %v, the expert %v (period %d)", i, f.Timer, f.Forecast, mean, tm.Period)
				}
			}
			timers++
			continue
		}
		// The count trees are in every routed forecast, at the manifest's weight.
		if (m.Trees == nil) != (f.Trees == nil) || f.Trees != nil && (f.Trees.Model != m.Trees.ID || f.Trees.Weight != m.Trees.Weight) {
			t.Fatalf("forecast %d: trees %+v, manifest %+v", i, f.Trees, m.Trees)
		}
		if f.Trees != nil {
			byModel[f.Trees.Model] = append(byModel[f.Trees.Model], i)
		}
		if f.Mean != nil {
			byModel[f.Mean.Model] = append(byModel[f.Mean.Model], i)
		}
	}
	python := map[string]map[int][]float64{} // model -> request -> its 60 values
	for id, idx := range byModel {
		e := files[id]
		rows := make([][]float64, len(idx))
		dense := "" // trees that read the dense features get the day and that graph
		if m.Trees != nil && id == m.Trees.ID && m.Trees.DenseFeatures {
			dense = filepath.Join(ts.dir, m.Dense.PInvoke.File)
		}
		for r, i := range idx {
			rows[r] = fns[i].Counts[1200-e.InputLen : 1200]
			if dense != "" {
				rows[r] = fns[i].Counts[:1200]
			}
		}
		ref := ortReference(t, filepath.Join(ts.dir, e.File), "forecast", rows, dense)
		python[id] = map[int][]float64{}
		for r, i := range idx {
			python[id][i] = ref[r]
		}
	}
	nonzero, means, uppers, sparse := 0, 0, 0, 0
	for i, f := range resp.Forecasts {
		if f.Timer != nil {
			continue // checked above
		}
		level := make([]float64, len(f.Forecast))
		for h := range f.Forecast {
			want := python[f.Model][i][h]
			if b := f.Blend; b != nil {
				want = (1-b.Weight)*want + b.Weight*python[b.Model][i][h]
			}
			if tr := f.Trees; tr != nil {
				want = (1-tr.Weight)*want + tr.Weight*python[tr.Model][i][h]
			}
			level[h] = want
			// The median is whole invocations: Python's blend rounded, either
			// neighbour where that blend lies within float32's reach of a half.
			got := float64(f.Median[h])
			if whole := math.Max(0, math.Floor(want+0.5)); got != whole {
				if half := math.Floor(want) + 0.5; math.Abs(want-half) > 1e-4*math.Max(1, want) || math.Abs(got-want) > 0.5 {
					t.Fatalf("forecast %d (%s, blend %+v, trees %+v) minute %d: server %v, python %v rounded %v", i, f.Model, f.Blend, f.Trees, h, got, want, whole)
				}
			}
			if got > 0 {
				nonzero++
			}
		}
		// The forecast is the expected count: for a sparse function p_invoke
		// times the size of an invocation (its p_invoke's parity is
		// TestPrewarmMatchesPythonOnnxRuntime's, the product the forecast
		// package's); with mean trees, (1 - w) times Python's level plus w
		// times their hour spread as that level shapes it
		// (count_trees.shaped), plus, with an upper share, that share of
		// how far the served quantile lies above Python's level; else the
		// median.
		if f.Sparse != nil {
			size, ok := m.Sparse.MeanWhenInvoked(fns[i].Counts[:1200])
			if !ok || size != f.Sparse.SizeWhenInvoked {
				t.Fatalf("forecast %d: sparse %+v, the rule on its pattern %v %v", i, f.Sparse, size, ok)
			}
			sparse++
			continue
		}
		if f.Mean == nil && f.Upper == nil {
			if !slices.Equal(f.Forecast, f.Median) {
				t.Fatalf("forecast %d: no mean trees or upper share, yet forecast %v is not the median %v", i, f.Forecast, f.Median)
			}
			continue
		}
		if u := f.Upper; u != nil && (m.Expected == nil || u.Quantile != m.Expected.Quantile || u.Share != m.Expected.Share) {
			t.Fatalf("forecast %d: upper %+v, manifest %+v", i, u, m.Expected)
		}
		expected := slices.Clone(level)
		if f.Mean != nil {
			means++
			hour, total, volume := slices.Clone(python[f.Mean.Model][i]), 0.0, 0.0
			for h := range hour {
				total, volume = total+level[h], volume+hour[h]
			}
			for h := range hour {
				if total > 0.5 {
					hour[h] = level[h] * volume / total
				}
				expected[h] = (1-f.Mean.Weight)*level[h] + f.Mean.Weight*hour[h]
			}
		}
		if u := f.Upper; u != nil {
			uppers++
			for h, q := range f.Quantiles[manifest.QuantileName(u.Quantile)] {
				expected[h] += u.Share * math.Max(float64(q)-level[h], 0)
			}
		}
		for h, want := range expected {
			if math.Abs(float64(f.Forecast[h])-want) > 1e-4*math.Max(1, want) {
				t.Fatalf("forecast %d (mean %+v, upper %+v) minute %d: server %v, python %v", i, f.Mean, f.Upper, h, f.Forecast[h], want)
			}
		}
	}
	if nonzero == 0 || means == 0 || uppers == 0 || sparse == 0 {
		t.Fatalf("%d nonzero medians, %d mean and %d upper expected counts compared, %d sparse functions", nonzero, means, uppers, sparse)
	}
	if m.Routing != nil && blended == 0 {
		t.Fatal("soft routing is on, yet no forecast blended two models")
	}
	t.Logf("%d of %d forecasts blended two models, %d answered by the timers' expert", blended, len(fns), timers)
}

// ortReference asks Python onnxruntime (scripts/ort_predict.py) for a
// model's output on rows; output is "forecast" or "p_invoke". dense is the
// dense p_invoke graph, whose minute 1 an expert continuing its trees
// takes, and whose features count trees that read them take.
func ortReference(t *testing.T, model, output string, rows [][]float64, dense string) [][]float64 {
	t.Helper()
	var ref map[string][][]float64
	fixture.RunPython(t, map[string]any{"model": model, "rows": rows, "dense": dense}, &ref, "scripts/ort_predict.py")
	if len(ref[output]) != len(rows) {
		t.Fatalf("python reference: %d rows of %q for %d", len(ref[output]), output, len(rows))
	}
	return ref[output]
}

// TestPrewarmMatchesPythonOnnxRuntime: /v1/prewarm's p_invoke equals
// Python onnxruntime's on the same real histories (of several lengths, so
// the Go side's padding of short histories is checked against training's),
// warm follows the threshold, and the default threshold is the manifest's.
func TestPrewarmMatchesPythonOnnxRuntime(t *testing.T) {
	ts := start(t, "")
	m, err := manifest.ReadManifest(ts.dir)
	if err != nil {
		t.Fatal(err)
	}
	if m.Dense.PInvoke == nil || m.Prewarm == nil {
		t.Fatal("the shipped models have no p_invoke models or no prewarm threshold")
	}
	files := map[string]string{m.Dense.PInvoke.ID: m.Dense.PInvoke.File}
	continuing := map[string]bool{} // experts that take the dense minute 1
	for _, e := range m.Experts {
		if e.PInvoke != nil {
			files[e.PInvoke.ID] = e.PInvoke.File
			continuing[e.PInvoke.ID] = e.PInvoke.Base != ""
		}
	}
	fns := fixtureRows(t, 40)
	lengths := []int{1200, 1440, 480, 1081}
	var b strings.Builder
	b.WriteString(`{"functions":[`)
	for i, f := range fns {
		if i > 0 {
			b.WriteString(",")
		}
		c, _ := json.Marshal(f.Counts[:lengths[i%len(lengths)]])
		fmt.Fprintf(&b, `{"id":%q,"counts":%s}`, f.ID, c)
	}
	b.WriteString("]}")
	code, body := post(t, ts.URL+"/v1/prewarm", b.String())
	if code != http.StatusOK {
		t.Fatalf("%d %s", code, body)
	}
	var resp server.PrewarmResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Threshold != m.Prewarm.Threshold || len(resp.Functions) != len(fns) {
		t.Fatalf("threshold %v (manifest %v), %d answers for %d", resp.Threshold, m.Prewarm.Threshold, len(resp.Functions), len(fns))
	}
	byModel := map[string][]int{}
	kinds := map[string]bool{}
	for i, f := range resp.Functions {
		if f.ID != fns[i].ID || len(f.PInvoke) != 60 || len(f.Forecast) != 60 || len(f.Warm) != 60 {
			t.Fatalf("answer %d: id %s, %d/%d/%d values", i, f.ID, len(f.PInvoke), len(f.Forecast), len(f.Warm))
		}
		for h, p := range f.PInvoke {
			if !(p >= 0 && p <= 1) || f.Warm[h] != (float64(p) >= resp.Threshold) {
				t.Fatalf("answer %d minute %d: p %v warm %v at threshold %v", i, h, p, f.Warm[h], resp.Threshold)
			}
		}
		byModel[f.Model] = append(byModel[f.Model], i)
		kinds[f.Kind] = true
	}
	chained, timers, stopped := 0, 0, 0
	capped := map[int]bool{}
	for id, idx := range byModel {
		if continuing[id] {
			chained += len(idx)
		}
		rows := make([][]float64, len(idx))
		for r, i := range idx {
			rows[r] = fns[i].Counts[:lengths[i%len(lengths)]]
		}
		ref := ortReference(t, filepath.Join(ts.dir, files[id]), "p_invoke", rows, filepath.Join(ts.dir, m.Dense.PInvoke.File))
		for r, i := range idx {
			// a timer's: at least the share of its cycles invoked, at most
			// the rate off its phases
			var floor, ceiling []float64
			if tj := resp.Functions[i].Timer; tj != nil {
				tm, ok := periodic.Detect(rows[r])
				if !ok || tm.Period != tj.Period {
					t.Fatalf("row %d: answered as a timer of period %d, Detect says %v %d", i, tj.Period, ok, tm.Period)
				}
				_, floor = tm.Forecast(rows[r], len(ref[r]))
				ceiling = tm.OffPhaseCap(rows[r], len(ref[r]))
				timers++
			}
			scale := 1.0 // the stop model's on the later minutes
			for h, want := range ref[r] {
				if floor != nil {
					want = math.Min(math.Max(want, floor[h]), ceiling[h])
				}
				// a silence longer than any before it: capped at its hazard
				if sl := resp.Functions[i].Silence; sl != nil {
					capped[i] = true
					g, longest := silence.State(rows[r])
					if g != sl.IdleMinutes || g <= longest || g < m.Silence.CapsFrom() {
						t.Fatalf("row %d: silence %+v, the pattern's gap %d after a longest %d (from %d)", i, sl, g, longest, m.Silence.CapsFrom())
					}
					want = math.Min(want, float64(float32(m.Silence.AtPast(sl.IdleMinutes+h, longest))))
				}
				// the stop model answers the next minute and scales the rest
				if st := resp.Functions[i].Stop; (st != nil) != (m.Stop != nil && floor == nil) {
					t.Fatalf("row %d: stop %+v with the manifest's stop model %v (a timer: %v)", i, st, m.Stop != nil, floor != nil)
				} else if st != nil && h == 0 {
					if math.Abs(float64(st.PInvokeBefore)-want) > 1e-4 {
						t.Fatalf("row %d: p_invoke before the stop model %v, python %v", i, st.PInvokeBefore, want)
					}
					x := silence.StopInputs(rows[r], float64(st.PInvokeBefore))
					scale = float64(float32(m.Stop.StillRuns(x, float64(st.PInvokeBefore))))
					want = m.Stop.P(x)
					stopped++
				} else {
					want *= scale
				}
				if got := float64(resp.Functions[i].PInvoke[h]); math.Abs(got-want) > 1e-4 {
					t.Fatalf("model %s row %d minute %d: server %v, python %v", id, i, h, got, want)
				}
			}
		}
	}
	if chained == 0 {
		t.Fatalf("no answer came from an expert that continues the dense trees (answers by model: %v)", byModel)
	}
	if len(capped) == 0 {
		t.Fatal("no fixture row was capped by the silence hazard: the cap went unchecked")
	}
	if timers == 0 {
		t.Fatal("no fixture row was answered as a timer: the timer's floor went unchecked")
	}
	if m.Stop != nil && stopped == 0 {
		t.Fatal("no answer went through the stop model: it went unchecked")
	}
	// A request's own threshold overrides the default.
	code, body = post(t, ts.URL+"/v1/prewarm", `{"policy":{"threshold":1},"counts":`+mustJSON(fns[0].Counts[:1200])+`}`)
	if code != http.StatusOK {
		t.Fatalf("%d %s", code, body)
	}
	var one server.PrewarmResponse
	if err := json.Unmarshal(body, &one); err != nil {
		t.Fatal(err)
	}
	for h, w := range one.Functions[0].Warm {
		if w != (one.Functions[0].PInvoke[h] >= 1) || one.Threshold != 1 {
			t.Fatalf("threshold 1: minute %d warm %v", h, w)
		}
	}
	// The decision alone (no count models run) is the same decision.
	code, body = post(t, ts.URL+"/v1/prewarm", strings.TrimSuffix(b.String(), "}")+`,"outputs":["warm","p_invoke"]}`)
	if code != http.StatusOK {
		t.Fatalf("%d %s", code, body)
	}
	var decision server.PrewarmResponse
	if err := json.Unmarshal(body, &decision); err != nil {
		t.Fatal(err)
	}
	for i, f := range decision.Functions {
		full := resp.Functions[i]
		if f.Forecast != nil || f.ForecastModel != "" || f.Model != full.Model || !slices.Equal(f.PInvoke, full.PInvoke) ||
			!slices.Equal(f.Warm, full.Warm) {
			t.Fatalf("answer %d: the decision alone differs from the full answer's (model %s vs %s)", i, f.Model, full.Model)
		}
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func TestBadInputsGetJSONErrors(t *testing.T) {
	ts := start(t, "")
	counts := func(n int, v string) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = "1"
		}
		if v != "" {
			parts[n/2] = v
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	var big strings.Builder
	big.WriteString(`{"functions":[`)
	for i := range 65 {
		if i > 0 {
			big.WriteString(",")
		}
		big.WriteString(`{"counts":` + counts(600, "") + `}`)
	}
	big.WriteString("]}")
	cases := []struct {
		name, path, body string
		status           int
	}{
		{"too short", "/v1/forecast", `{"counts":[1,2,3]}`, 400},
		{"too long", "/v1/forecast", `{"counts":` + counts(1441, "") + `}`, 400},
		{"negative", "/v1/forecast", `{"counts":` + counts(600, "-1") + `}`, 400},
		{"NaN literal", "/v1/forecast", `{"counts":` + counts(600, "NaN") + `}`, 400},
		{"beyond float32", "/v1/forecast", `{"counts":` + counts(600, "1e39") + `}`, 400},
		{"null counts", "/v1/forecast", `{"counts":null}`, 400},
		{"non-numeric", "/v1/forecast", `{"counts":` + counts(600, `"x"`) + `}`, 400},
		{"empty batch", "/v1/forecast", `{"functions":[]}`, 400},
		{"empty body", "/v1/forecast", ``, 400},
		{"unknown field", "/v1/forecast", `{"count":[1]}`, 400},
		{"too large a batch", "/v1/forecast", big.String(), 400},
		{"body over the limit", "/v1/forecast", `{"counts":` + counts(2500000, "") + `}`, 413},
		{"unknown route", "/v1/nope", `{}`, 404},
		{"admin disabled", "/v1/admin/reload", ``, 403},
		{"prewarm too short", "/v1/prewarm", `{"counts":[1,2,3]}`, 400},
		{"prewarm negative", "/v1/prewarm", `{"counts":` + counts(600, "-1") + `}`, 400},
		{"prewarm non-numeric", "/v1/prewarm", `{"counts":` + counts(600, `"x"`) + `}`, 400},
		{"prewarm too large a batch", "/v1/prewarm", big.String(), 400},
		{"prewarm threshold above 1", "/v1/prewarm", `{"policy":{"threshold":1.5},"counts":` + counts(600, "") + `}`, 400},
		{"prewarm threshold not a number", "/v1/prewarm", `{"policy":{"threshold":"x"},"counts":` + counts(600, "") + `}`, 400},
		{"prewarm unknown policy field", "/v1/prewarm", `{"policy":{"window":5},"counts":` + counts(600, "") + `}`, 400},
		{"policy on forecast", "/v1/forecast", `{"policy":{"threshold":0.5},"counts":` + counts(600, "") + `}`, 400},
	}
	// Cross-site posts: TestEveryBodyRouteRefusesCrossSitePosts, on every body route.
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body := post(t, ts.URL+tc.path, tc.body)
			if code != tc.status {
				t.Fatalf("status %d, want %d: %s", code, tc.status, body)
			}
			var e server.APIError
			if err := json.Unmarshal(body, &e); err != nil || e.Error.Message == "" || e.Error.Status != code {
				t.Fatalf("not a JSON error with a message: %s", body)
			}
		})
	}
}

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func TestOperationalEndpoints(t *testing.T) {
	ts := start(t, "s3cret")
	post(t, ts.URL+"/v1/forecast", batchBody(fixtureRows(t, 3), 1440))
	cases := []struct {
		path, contains string
	}{
		{"/healthz", `"ok"`},
		{"/readyz", `"ready"`},
		{"/v1/experts", `"loaded_at"`},
		{"/openapi.json", `"/v1/forecast"`},
		{"/metrics", `mesp_http_requests_total{route="/v1/forecast",status="200"} 1`},
		{"/metrics", `mesp_routes_total`},
		{"/metrics", `mesp_model_loads_total{result="ok"} 1`},
	}
	for _, tc := range cases {
		code, body := get(t, ts.URL+tc.path)
		if code != 200 || !strings.Contains(string(body), tc.contains) {
			t.Errorf("%s: %d, missing %q in %.300s", tc.path, code, tc.contains, body)
		}
	}
	if code, _ := post(t, ts.URL+"/v1/admin/reload", "", "Authorization", "Bearer wrong"); code != 401 {
		t.Errorf("wrong token: %d, want 401", code)
	}
	if code, body := post(t, ts.URL+"/v1/admin/reload", "", "Authorization", "Bearer s3cret"); code != 200 {
		t.Errorf("reload: %d %s", code, body)
	}
}

// TestHotSwapUnderLoad flips which model serves a cluster 10 times while
// clients keep asking; no request may fail.
func TestHotSwapUnderLoad(t *testing.T) {
	ts := start(t, "tok")
	orig, err := os.ReadFile(filepath.Join(ts.dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m manifest.Manifest
	json.Unmarshal(orig, &m)
	for i := range m.Experts {
		if m.Experts[i].Serve == "expert" {
			m.Experts[i].Serve = "dense"
		} else {
			m.Experts[i].Serve = "expert"
		}
	}
	flipped, _ := json.Marshal(m)
	body := batchBody(fixtureRows(t, 8), 1300)
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				resp, err := http.Post(ts.URL+"/v1/forecast", "application/json", strings.NewReader(body))
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("%d %s", resp.StatusCode, b))
					continue
				}
				ok.Add(1)
			}
		}()
	}
	kinds := map[string]bool{}
	// 10 swaps under load (each verifies 18 ONNX files and loads the 14
	// that can answer, seconds apiece since the p_invoke graphs carry
	// thousands of trees): enough to interleave swaps with requests
	// hundreds of times.
	for i := range 10 {
		content := orig
		if i%2 == 0 {
			content = flipped
		}
		if err := writeAtomic(filepath.Join(ts.dir, "manifest.json"), content); err != nil {
			t.Fatal(err)
		}
		if st := ts.srv.Reload("test"); !st.OK {
			t.Fatalf("swap %d refused: %s", i, st.Error)
		}
		_, b := post(t, ts.URL+"/v1/forecast", body)
		var resp server.ForecastResponse
		json.Unmarshal(b, &resp)
		for _, f := range resp.Forecasts {
			kinds[fmt.Sprint(i%2, f.ID, f.Kind)] = true
		}
	}
	stop()
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d requests failed during swaps (first: %v), %d ok", failed.Load(), firstErr.Load(), ok.Load())
	}
	if ok.Load() < 100 {
		t.Fatalf("only %d requests completed", ok.Load())
	}
	// The swaps were real: some function was answered by different kinds.
	changed := false
	for _, f := range fixtureRows(t, 8) {
		if kinds[fmt.Sprint(0, f.ID, "expert")] != kinds[fmt.Sprint(1, f.ID, "expert")] {
			changed = true
		}
	}
	if !changed && len(m.Experts) > 0 {
		t.Error("no answer changed between the two manifests")
	}
}

func writeAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func TestCorruptExpertIsRefusedOldKeepsServing(t *testing.T) {
	ts := start(t, "tok")
	m, _ := manifest.ReadManifest(ts.dir)
	body := batchBody(fixtureRows(t, 5), 1440)
	_, before := post(t, ts.URL+"/v1/forecast", body)
	// Drop a corrupt file over an expert and also over the dense model,
	// by the watcher's path (file change) and by the admin route.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := ts.srv.Watch(ctx, ts.dir, 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(ts.dir, m.Experts[0].File)
	good, _ := os.ReadFile(target)
	if err := writeAtomic(target, good[:len(good)/2]); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, b := get(t, ts.URL+"/v1/experts")
		if strings.Contains(string(b), `"trigger":"watch"`) {
			if !strings.Contains(string(b), `"ok":false`) {
				t.Fatalf("watch reload of a corrupt file was not refused: %s", b)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the watcher never reloaded")
		}
		time.Sleep(50 * time.Millisecond)
	}
	code, msg := post(t, ts.URL+"/v1/admin/reload", "", "Authorization", "Bearer tok")
	if code != http.StatusUnprocessableEntity || !strings.Contains(string(msg), "previous models keep serving") {
		t.Fatalf("admin reload of a corrupt file: %d %s", code, msg)
	}
	code, after := post(t, ts.URL+"/v1/forecast", body)
	if code != 200 || !bytes.Equal(before, after) {
		t.Fatalf("old experts must keep answering identically: %d", code)
	}
	// Putting the good file back is picked up again.
	writeAtomic(target, good)
	if st := ts.srv.Reload("test"); !st.OK {
		t.Fatal(st.Error)
	}
}

// TestConsoleExamplesFollowTheModelSet: /v1/examples offers a real member
// of each shipped cluster, read once per model set: the files can go while
// the set serves, and a reload reads them again.
func TestConsoleExamplesFollowTheModelSet(t *testing.T) {
	ts := start(t, "s3cret")
	examples := func() []struct {
		ID     string    `json:"id"`
		Counts []float64 `json:"counts"`
	} {
		t.Helper()
		code, body := get(t, ts.URL+"/v1/examples")
		var out struct {
			Examples []struct {
				ID     string    `json:"id"`
				Counts []float64 `json:"counts"`
			} `json:"examples"`
		}
		if code != 200 || json.Unmarshal(body, &out) != nil {
			t.Fatalf("/v1/examples: %d %.200s", code, body)
		}
		return out.Examples
	}
	first := examples()
	parquets, _ := filepath.Glob(filepath.Join(ts.dir, "cluster-*.parquet"))
	if len(first) == 0 || len(first) != len(parquets) {
		t.Fatalf("%d examples for %d shipped cluster files", len(first), len(parquets))
	}
	for _, e := range first {
		if e.ID == "" || len(e.Counts) != 1440 {
			t.Fatalf("example %q with %d counts", e.ID, len(e.Counts))
		}
	}
	for _, p := range parquets {
		os.Remove(p)
	}
	if again := examples(); len(again) != len(first) || again[0].ID != first[0].ID {
		t.Fatalf("same model set, examples changed: %d, want %d", len(again), len(first))
	}
	if code, body := post(t, ts.URL+"/v1/admin/reload", "", "Authorization", "Bearer s3cret"); code != 200 {
		t.Fatalf("reload: %d %s", code, body)
	}
	if after := examples(); len(after) != 0 {
		t.Fatalf("%d examples after the files went and the set was reloaded", len(after))
	}
}

// TestConcurrentRequestsGetTheirOwnAnswers: request memory is pooled and
// concurrent calls to one model are merged into one run, so requests of
// different sizes and functions, sent at once from many callers, must each
// get the answer they get alone (to float rounding: a merged run may block
// its matrix products differently).
func TestConcurrentRequestsGetTheirOwnAnswers(t *testing.T) {
	ts := start(t, "")
	fns := fixtureRows(t, 64)
	var bodies []string
	for i, n := range []int{1, 64, 3, 17, 1, 40} {
		lo := (i * 11) % (len(fns) - n + 1)
		bodies = append(bodies, batchBody(fns[lo:lo+n], 1200-i*37))
	}
	decode := func(b []byte) (server.ForecastResponse, error) {
		var r server.ForecastResponse
		err := json.Unmarshal(b, &r)
		return r, err
	}
	alone := make([]server.ForecastResponse, len(bodies))
	for i, b := range bodies {
		code, resp := post(t, ts.URL+"/v1/forecast", b)
		r, err := decode(resp)
		if code != http.StatusOK || err != nil {
			t.Fatalf("body %d alone: %d %s", i, code, resp)
		}
		alone[i] = r
	}
	same := func(a, b server.ForecastResponse) error {
		if len(a.Forecasts) != len(b.Forecasts) {
			return fmt.Errorf("%d forecasts, want %d", len(a.Forecasts), len(b.Forecasts))
		}
		for j, f := range a.Forecasts {
			g := b.Forecasts[j]
			if f.ID != g.ID || f.Cluster != g.Cluster || f.Model != g.Model || f.Distance != g.Distance || len(f.Forecast) != len(g.Forecast) {
				return fmt.Errorf("function %d: %s/%d/%s, want %s/%d/%s", j, f.ID, f.Cluster, f.Model, g.ID, g.Cluster, g.Model)
			}
			for h, v := range f.Forecast {
				if d := float64(v - g.Forecast[h]); math.Abs(d) > 1e-4*(1+math.Abs(float64(g.Forecast[h]))) {
					return fmt.Errorf("function %s minute %d: %v, want %v", f.ID, h, v, g.Forecast[h])
				}
			}
		}
		return nil
	}
	var wg sync.WaitGroup
	var mismatches atomic.Int64
	var first atomic.Value
	for c := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range 30 {
				i := (c + k) % len(bodies)
				resp, err := http.Post(ts.URL+"/v1/forecast", "application/json", strings.NewReader(bodies[i]))
				if err == nil {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					var r server.ForecastResponse
					if r, err = decode(b); err == nil {
						err = same(r, alone[i])
					}
				}
				if err != nil {
					mismatches.Add(1)
					first.CompareAndSwap(nil, err.Error())
				}
			}
		}()
	}
	wg.Wait()
	if n := mismatches.Load(); n > 0 {
		t.Fatalf("%d of 240 concurrent answers differ from the same request sent alone (first: %v)", n, first.Load())
	}
}

// TestOpenAPIDescribesEveryRoute: each route the server answers is in
// /openapi.json with its method (redirects and the favicon aside).
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	ts := start(t, "")
	_, body := get(t, ts.URL+"/openapi.json")
	var doc struct {
		Paths map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	param := regexp.MustCompile(`:(\w+)`)
	for _, r := range ts.srv.Echo().Routes() {
		path := strings.TrimSuffix(param.ReplaceAllString(r.Path, "{$1}"), "*")
		switch path {
		case "/", "/favicon.ico", "/console":
			continue
		}
		if _, ok := doc.Paths[path][strings.ToLower(r.Method)]; !ok {
			t.Errorf("%s %s is not in /openapi.json", r.Method, path)
		}
	}
	code, _ := get(t, ts.URL+"/console")
	if code != http.StatusOK { // the client follows the redirect to /console/
		t.Errorf("/console: %d", code)
	}
}
