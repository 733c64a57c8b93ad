package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mesp-project/mesp/forecast"
	"github.com/mesp-project/mesp/manifest"
	"github.com/mesp-project/mesp/server"
)

// fakeModels stands in for the forecaster so that the handlers are tested
// without ONNX Runtime or model files: it answers each function with its
// mean count for every minute and p_invoke = pInvoke.
type fakeModels struct {
	mu       sync.Mutex
	loaded   bool
	reloadOK bool
	pInvoke  float32
	calls    int
	outs     forecast.Outputs // the last Predict's
	err      error            // Predict's answer, when set
	// block, when set, holds every Predict until it is closed (requests
	// in flight, for admission control).
	block chan struct{}
}

func (f *fakeModels) catalog() forecast.Catalog {
	m := manifest.Manifest{Horizon: manifest.Horizon,
		Dense:     manifest.Model{ID: "dense", File: "dense.onnx", Family: "nbeats", InputLen: 120, PInvoke: &manifest.PInvoke{ID: "dense-p"}},
		Experts:   []manifest.Expert{{Model: manifest.Model{ID: "cluster-4", Family: "patchtst", InputLen: 240}, Cluster: 4, Serve: "expert"}},
		Prewarm:   &manifest.Prewarm{Threshold: 0.2},
		Quantiles: []manifest.Quantile{{TreesGraph: manifest.TreesGraph{Model: manifest.Model{ID: "q9"}}, Q: 0.9}, {TreesGraph: manifest.TreesGraph{Model: manifest.Model{ID: "q99"}}, Q: 0.99}}}
	cs := manifest.Clusters{Length: 1440, Clusters: []manifest.Cluster{{ID: 4, Size: 31, Threshold: 0.4, Centroid: []float64{1, 2}}}}
	return forecast.Catalog{Manifest: m, Clusters: cs, LoadedAt: time.Unix(1, 0), MaxInputLen: 240,
		InputLens: map[string]int{"dense": 120, "cluster-4": 240}}
}

func (f *fakeModels) Catalog() (forecast.Catalog, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.loaded {
		return forecast.Catalog{}, false
	}
	return f.catalog(), true
}

func (f *fakeModels) ReloadCatalog() (forecast.Catalog, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.reloadOK {
		return forecast.Catalog{}, errors.New("expert-4.onnx: sha256 mismatch")
	}
	f.loaded = true
	return f.catalog(), nil
}

func (f *fakeModels) Predict(_ context.Context, reqs []forecast.Request, _ forecast.Mode, outs forecast.Outputs) ([]forecast.Result, error) {
	f.mu.Lock()
	f.calls++
	f.outs = outs
	err, block := f.err, f.block
	f.mu.Unlock()
	if block != nil {
		<-block
	}
	if err != nil {
		return nil, err
	}
	out := make([]forecast.Result, len(reqs))
	for i, r := range reqs {
		var sum float64
		for _, v := range r.Counts {
			sum += v
		}
		res := forecast.Result{ID: r.ID, Cluster: 4, Model: "cluster-4", Kind: "expert"}
		if outs&(forecast.Counts|forecast.Quantiles) != 0 {
			res.Forecast = make([]float32, manifest.Horizon)
			for h := range res.Forecast {
				res.Forecast[h] = float32(sum / float64(len(r.Counts)))
			}
			res.Median = forecast.WholeInvocations(res.Forecast)
		}
		if outs&forecast.Quantiles != 0 {
			for k, q := range []float64{0.9, 0.99} {
				c := make([]float32, manifest.Horizon)
				for h := range c {
					c[h] = res.Median[h] + float32(k+1)
				}
				res.Quantiles = append(res.Quantiles, forecast.QuantileCounts{Q: q, Counts: c})
			}
		}
		if outs&forecast.PInvoke != 0 {
			res.PInvoke, res.PModel, res.PKind = make([]float32, manifest.Horizon), "dense-p", "dense"
			for h := range res.PInvoke {
				res.PInvoke[h] = f.pInvoke
			}
		}
		out[i] = res
	}
	return out, nil
}

func (f *fakeModels) ForecastModel(ctx context.Context, reqs []forecast.Request, id string) ([]forecast.Result, error) {
	if id != "dense" && id != "cluster-4" {
		return nil, fmt.Errorf("%w: unknown model %q", forecast.ErrInvalid, id)
	}
	return f.Predict(ctx, reqs, forecast.DenseOnly, forecast.Counts)
}

func startFake(t *testing.T, f *fakeModels) string {
	t.Helper()
	srv := server.New(f, server.Options{AdminToken: "tok", MaxBatch: 8, MaxBodyBytes: 1 << 20,
		ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second})
	srv.Reload("start")
	return serve(t, srv)
}

func day(v float64, n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprint(v)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// Before any set loads, every answer is a JSON 503 and nothing runs.
func TestHandlersBeforeAnyModels(t *testing.T) {
	f := &fakeModels{}
	url := startFake(t, f)
	for _, c := range []struct{ method, path string }{
		{"GET", "/readyz"}, {"GET", "/v2/health/ready"}, {"GET", "/v1/experts"}, {"GET", "/v1/clusters"},
		{"POST", "/v1/prewarm"},
	} {
		var status int
		var body []byte
		if c.method == "GET" {
			status, body = get(t, url+c.path)
		} else {
			status, body = post(t, url+c.path, `{"id":"f","counts":`+day(1, 300)+`}`)
		}
		if status != http.StatusServiceUnavailable || !json.Valid(body) || !strings.Contains(string(body), "error") {
			t.Errorf("%s %s: %d %s, want a JSON 503", c.method, c.path, status, body)
		}
	}
	if f.calls != 0 {
		t.Errorf("%d model calls before any models", f.calls)
	}
}

// The pre-warm decision follows the threshold in force: the manifest's, or
// the request's; a threshold that is not a probability is a JSON 400.
func TestPrewarmThresholds(t *testing.T) {
	f := &fakeModels{reloadOK: true, pInvoke: 0.3}
	url := startFake(t, f)
	cases := []struct {
		policy    string
		status    int
		threshold float64
		warm      bool
	}{
		{"", 200, 0.2, true},
		{`,"policy":{"threshold":0.5}`, 200, 0.5, false},
		{`,"policy":{"threshold":0.3}`, 200, 0.3, true},
		{`,"policy":{"threshold":1.5}`, 400, 0, false},
		{`,"policy":{"threshold":-0.1}`, 400, 0, false},
	}
	for _, c := range cases {
		status, body := post(t, url+"/v1/prewarm", `{"functions":[{"id":"a","counts":`+day(2, 300)+`},{"id":"b","counts":`+day(0, 300)+`}]`+c.policy+`}`)
		if status != c.status {
			t.Fatalf("policy %q: %d %s, want %d", c.policy, status, body, c.status)
		}
		if status != 200 {
			var e server.APIError
			if json.Unmarshal(body, &e) != nil || !strings.Contains(e.Error.Message, "threshold") {
				t.Errorf("policy %q: error body %s", c.policy, body)
			}
			continue
		}
		var got server.PrewarmResponse
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatal(err)
		}
		if got.Threshold != c.threshold || len(got.Functions) != 2 {
			t.Fatalf("policy %q: threshold %v, %d functions", c.policy, got.Threshold, len(got.Functions))
		}
		for _, fn := range got.Functions {
			if len(fn.Warm) != manifest.Horizon || fn.Warm[0] != c.warm || fn.Forecast[0] != map[string]float32{"a": 2, "b": 0}[fn.ID] {
				t.Errorf("policy %q: %s warm %v forecast %v", c.policy, fn.ID, fn.Warm[0], fn.Forecast[0])
			}
		}
	}
}

// A pre-warm request's "outputs" chooses the arrays answered and what the
// models compute: the decision alone runs no count model; unknown or no
// names, or "outputs" on /v1/forecast, are JSON 400s.
func TestPrewarmOutputs(t *testing.T) {
	f := &fakeModels{reloadOK: true, pInvoke: 0.3}
	url := startFake(t, f)
	cases := []struct {
		outputs             string
		status              int
		runs                forecast.Outputs
		pInvoke, warm, cast bool
		median              bool
	}{
		{"", 200, forecast.Counts | forecast.PInvoke, true, true, true, true},
		{`,"outputs":null`, 200, forecast.Counts | forecast.PInvoke, true, true, true, true},
		{`,"outputs":["warm","p_invoke"]`, 200, forecast.PInvoke, true, true, false, false},
		{`,"outputs":["warm"]`, 200, forecast.PInvoke, false, true, false, false},
		{`,"outputs":["forecast"]`, 200, forecast.Counts, false, false, true, false},
		{`,"outputs":["median"]`, 200, forecast.Counts, false, false, false, true},
		{`,"outputs":["forecast","warm","p_invoke"]`, 200, forecast.Counts | forecast.PInvoke, true, true, true, false},
		{`,"outputs":[]`, 400, 0, false, false, false, false},
		{`,"outputs":["warm","cold"]`, 400, 0, false, false, false, false},
		{`,"outputs":"warm"`, 400, 0, false, false, false, false},
		{`,"outputs":["warm"` + strings.Repeat(`,"warm"`, 32) + `]`, 400, 0, false, false, false, false},
	}
	for _, c := range cases {
		f.mu.Lock()
		f.outs = 0
		f.mu.Unlock()
		status, body := post(t, url+"/v1/prewarm", `{"functions":[{"id":"a","counts":`+day(2, 300)+`}]`+c.outputs+`}`)
		if status != c.status {
			t.Fatalf("%s: %d %s, want %d", c.outputs, status, body, c.status)
		}
		f.mu.Lock()
		runs := f.outs
		f.mu.Unlock()
		if runs != c.runs {
			t.Errorf("%s: the models computed %b, want %b", c.outputs, runs, c.runs)
		}
		if status != 200 {
			if !json.Valid(body) || !strings.Contains(string(body), "output") {
				t.Errorf("%s: error body %s", c.outputs, body)
			}
			continue
		}
		var fields struct {
			Functions []map[string]any `json:"functions"`
		}
		if err := json.Unmarshal(body, &fields); err != nil || len(fields.Functions) != 1 {
			t.Fatalf("%s: %v %s", c.outputs, err, body)
		}
		fn := fields.Functions[0]
		for name, want := range map[string]bool{"p_invoke": c.pInvoke, "warm": c.warm, "forecast": c.cast, "median": c.median,
			"forecast_model": c.cast || c.median, "model": c.pInvoke || c.warm} {
			if _, got := fn[name]; got != want {
				t.Errorf("%s: field %q present %v, want %v (%v)", c.outputs, name, got, want, fn)
			}
		}
		if w, ok := fn["warm"].([]any); ok && (len(w) != manifest.Horizon || w[0] != true) {
			t.Errorf("%s: warm %v at p_invoke 0.3 and threshold 0.2", c.outputs, w)
		}
	}
	if status, body := post(t, url+"/v1/forecast", `{"id":"a","counts":`+day(2, 300)+`,"policy":{"threshold":0.5}}`); status != 400 ||
		!strings.Contains(string(body), "policy") {
		t.Errorf("policy on /v1/forecast: %d %s", status, body)
	}
	// The V2 route runs what its requested outputs need, too.
	for outputs, want := range map[string]forecast.Outputs{
		"":                                       forecast.Counts | forecast.PInvoke,
		`{"name":"p_invoke"}`:                    forecast.PInvoke,
		`{"name":"forecast"}`:                    forecast.Counts,
		`{"name":"median"}`:                      forecast.Counts,
		`{"name":"cluster"}`:                     0,
		`{"name":"cluster"},{"name":"forecast"}`: forecast.Counts,
	} {
		f.mu.Lock()
		f.outs = 255
		f.mu.Unlock()
		body := `{"inputs":[{"name":"counts","shape":[1,300],"datatype":"FP32","data":` + day(1, 300) + `}]`
		if outputs != "" {
			body += `,"outputs":[` + outputs + `]`
		}
		if status, b := post(t, url+"/v2/models/mesp/infer", body+"}"); status != 200 {
			t.Fatalf("V2 outputs %s: %d %s", outputs, status, b)
		}
		f.mu.Lock()
		got := f.outs
		f.mu.Unlock()
		if got != want {
			t.Errorf("V2 outputs %s: the models computed %b, want %b", outputs, got, want)
		}
	}
}

// everyLevel names the levels the shipped set serves: 0.8, 0.85 and every
// hundredth from 0.9 to 0.99, in the order the answer lists them.
var everyLevel = []string{"q0.8", "q0.85", "q0.9", "q0.91", "q0.92", "q0.93", "q0.94", "q0.95", "q0.96", "q0.97", "q0.98", "q0.99"}

// Quantiles are answered where "outputs" names them, on every route, and
// computed only then; a level between two served ones is interpolated
// (KServe V2's metadata lists the served ones); a quantile beyond the
// set's levels is a JSON 400 that lists those it serves; "q0.5" is the
// median.
func TestQuantileOutputs(t *testing.T) {
	f := &fakeModels{reloadOK: true, pInvoke: 0.3}
	url := startFake(t, f)
	cases := []struct {
		route, outputs string
		status         int
		runs           forecast.Outputs
		fields         []string // the per-function arrays answered
		quantiles      []string
	}{
		{"/v1/forecast", "", 200, forecast.Counts, []string{"forecast", "median"}, nil},
		{"/v1/forecast", `,"outputs":["q0.9","q0.99"]`, 200, forecast.Counts | forecast.Quantiles, []string{"quantiles"}, []string{"q0.9", "q0.99"}},
		{"/v1/forecast", `,"outputs":["forecast","q0.99"]`, 200, forecast.Counts | forecast.Quantiles, []string{"forecast", "quantiles"}, []string{"q0.99"}},
		{"/v1/forecast", `,"outputs":["q0.5"]`, 200, forecast.Counts, []string{"quantiles"}, []string{"q0.5"}},
		{"/v1/forecast", `,"outputs":["q0.945","q0.7"]`, 200, forecast.Counts | forecast.Quantiles, []string{"quantiles"}, []string{"q0.7", "q0.945"}},
		{"/v1/forecast", `,"outputs":["q0.995"]`, 400, 0, nil, nil},
		{"/v1/forecast", `,"outputs":["q0.4"]`, 400, 0, nil, nil},
		{"/v1/forecast", `,"outputs":["qNaN"]`, 400, 0, nil, nil},
		{"/v1/prewarm", `,"outputs":["q-0.9"]`, 400, 0, nil, nil},
		{"/v1/forecast", `,"outputs":[]`, 400, 0, nil, nil},
		{"/v1/prewarm", `,"outputs":["warm","q0.9"]`, 200, forecast.PInvoke | forecast.Quantiles, []string{"warm", "quantiles"}, []string{"q0.9"}},
		{"/v1/prewarm", "", 200, forecast.Counts | forecast.PInvoke, []string{"p_invoke", "warm", "forecast", "median"}, nil},
		{"/v1/prewarm", `,"outputs":["q1"]`, 400, 0, nil, nil},
		// every level a set like the shipped one serves, with the counts
		{"/v1/forecast", `,"outputs":["forecast","median","` + strings.Join(everyLevel, `","`) + `"]`, 200, forecast.Counts | forecast.Quantiles, []string{"forecast", "median", "quantiles"}, everyLevel},
	}
	for _, c := range cases {
		f.mu.Lock()
		f.outs = 255
		f.mu.Unlock()
		status, body := post(t, url+c.route, `{"functions":[{"id":"a","counts":`+day(2, 300)+`}]`+c.outputs+`}`)
		if status != c.status {
			t.Fatalf("%s %s: %d %s, want %d", c.route, c.outputs, status, body, c.status)
		}
		if status != 200 {
			var e server.APIError
			if json.Unmarshal(body, &e) != nil || !strings.Contains(e.Error.Message, `"q0.99"`) {
				t.Errorf("%s %s: error body %s (want the served quantiles named)", c.route, c.outputs, body)
			}
			continue
		}
		f.mu.Lock()
		runs := f.outs
		f.mu.Unlock()
		if runs != c.runs {
			t.Errorf("%s %s: the models computed %b, want %b", c.route, c.outputs, runs, c.runs)
		}
		var answer struct {
			Forecasts []map[string]json.RawMessage `json:"forecasts"`
			Functions []map[string]json.RawMessage `json:"functions"`
		}
		if err := json.Unmarshal(body, &answer); err != nil {
			t.Fatal(err)
		}
		fn := append(answer.Forecasts, answer.Functions...)[0]
		for _, name := range []string{"forecast", "median", "p_invoke", "warm", "quantiles"} {
			if _, got := fn[name]; got != slices.Contains(c.fields, name) {
				t.Errorf("%s %s: field %q present %v, want the fields %q", c.route, c.outputs, name, got, c.fields)
			}
		}
		var qs map[string][]float32
		if raw, ok := fn["quantiles"]; ok {
			if err := json.Unmarshal(raw, &qs); err != nil {
				t.Fatal(err)
			}
		}
		if got := slices.Sorted(maps.Keys(qs)); !slices.Equal(got, c.quantiles) {
			t.Errorf("%s %s: quantiles %q, want %q", c.route, c.outputs, got, c.quantiles)
		}
		for name, counts := range qs {
			// the fake's median is 2; its q0.9 is the median + 1, q0.99 + 2;
			// a level between is linear in the level (q0.945: 3.5, q0.7: 2.5)
			q, err := strconv.ParseFloat(strings.TrimPrefix(name, "q"), 64)
			if err != nil {
				t.Fatal(err)
			}
			want := 2 + (q-0.5)/0.4
			if q > 0.9 {
				want = 3 + (q-0.9)/0.09
			}
			if len(counts) != manifest.Horizon || math.Abs(float64(counts[0])-want) > 1e-5 {
				t.Errorf("%s %s: %s %v, want %v a minute", c.route, c.outputs, name, counts, want)
			}
		}
	}
	// KServe V2 names each quantile an output, listed in the metadata
	status, body := get(t, url+"/v2/models/mesp")
	for _, q := range []string{`"q0.5"`, `"q0.9"`, `"q0.99"`} {
		if status != 200 || !strings.Contains(string(body), q) {
			t.Errorf("V2 metadata lacks %s: %d %s", q, status, body)
		}
	}
	f.mu.Lock()
	f.outs = 255
	f.mu.Unlock()
	status, body = post(t, url+"/v2/models/mesp/infer", `{"inputs":[{"name":"counts","shape":[1,300],"datatype":"FP32","data":`+day(2, 300)+`}],"outputs":[{"name":"q0.99"},{"name":"q0.5"}]}`)
	var v2 struct {
		Outputs []struct {
			Name  string    `json:"name"`
			Shape []int     `json:"shape"`
			Data  []float32 `json:"data"`
		} `json:"outputs"`
	}
	if status != 200 || json.Unmarshal(body, &v2) != nil || len(v2.Outputs) != 2 {
		t.Fatalf("V2 quantiles: %d %s", status, body)
	}
	for i, want := range []struct {
		name string
		v    float32
	}{{"q0.5", 2}, {"q0.99", 4}} {
		o := v2.Outputs[i]
		if o.Name != want.name || !slices.Equal(o.Shape, []int{1, manifest.Horizon}) || len(o.Data) != manifest.Horizon || o.Data[0] != want.v {
			t.Errorf("V2 output %d: %s %v %v, want %s at %v", i, o.Name, o.Shape, o.Data[:1], want.name, want.v)
		}
	}
	if f.outs&forecast.Quantiles == 0 {
		t.Errorf("V2: quantiles named but not computed (%b)", f.outs)
	}
	// a level between two served ones is answered there too, one beyond
	// them is refused
	status, body = post(t, url+"/v2/models/mesp/infer", `{"inputs":[{"name":"counts","shape":[1,300],"datatype":"FP32","data":`+day(2, 300)+`}],"outputs":[{"name":"q0.8"}]}`)
	v2.Outputs = nil
	if status != 200 || json.Unmarshal(body, &v2) != nil || len(v2.Outputs) != 1 || v2.Outputs[0].Name != "q0.8" || v2.Outputs[0].Data[0] != 2.75 {
		t.Errorf("V2 q0.8, from the median 2 to q0.9's 3: %d %s", status, body)
	}
	if status, body := post(t, url+"/v2/models/mesp/infer", `{"inputs":[{"name":"counts","shape":[1,300],"datatype":"FP32","data":`+day(2, 300)+`}],"outputs":[{"name":"q0.995"}]}`); status != 400 {
		t.Errorf("V2 quantile beyond the served levels: %d %s", status, body)
	}
}

// /v1/experts and /v1/clusters describe the catalog; a refused reload
// answers 422 and the set in service stays.
func TestCatalogAndRefusedReload(t *testing.T) {
	f := &fakeModels{reloadOK: true}
	url := startFake(t, f)
	status, body := get(t, url+"/v1/experts")
	var experts struct {
		Dense   server.ExpertJSON   `json:"dense"`
		Experts []server.ExpertJSON `json:"experts"`
	}
	if status != 200 || json.Unmarshal(body, &experts) != nil || experts.Dense.ID != "dense" || len(experts.Experts) != 1 ||
		experts.Experts[0].ClusterSize != 31 || experts.Experts[0].Threshold != 0.4 {
		t.Fatalf("experts: %d %s", status, body)
	}
	if status, body := get(t, url+"/v2/models/cluster-4"); status != 200 || !strings.Contains(string(body), `"min_minutes":240`) ||
		!strings.Contains(string(body), "p_invoke") {
		t.Errorf("V2 metadata: %d %s", status, body)
	}
	if status, _ := get(t, url+"/v2/models/cluster-9"); status != http.StatusNotFound {
		t.Errorf("an unknown V2 model: %d", status)
	}
	f.mu.Lock()
	f.reloadOK = false
	f.mu.Unlock()
	status, body = post(t, url+"/v1/admin/reload", "", "Authorization", "Bearer tok")
	if status != http.StatusUnprocessableEntity || !strings.Contains(string(body), "previous models keep serving") ||
		!strings.Contains(string(body), "sha256 mismatch") {
		t.Errorf("refused reload: %d %s", status, body)
	}
	if status, _ := get(t, url+"/readyz"); status != 200 {
		t.Errorf("after a refused reload, readyz %d", status)
	}
	if status, _ := post(t, url+"/v1/admin/reload", ""); status != http.StatusUnauthorized {
		t.Errorf("reload without the token: %d", status)
	}
}

// v1 and V2 map errors to the same statuses, in their own body shapes.
func TestV1AndV2MapErrorsAlike(t *testing.T) {
	f := &fakeModels{reloadOK: true}
	url := startFake(t, f)
	v1 := `{"id":"f","counts":` + day(1, 300) + `}`
	v2 := `{"inputs":[{"name":"counts","shape":[1,300],"datatype":"FP32","data":` + day(1, 300) + `}]}`
	for _, c := range []struct {
		err    error
		status int
	}{
		{fmt.Errorf("%w: counts[7] is NaN", forecast.ErrInvalid), http.StatusBadRequest},
		{forecast.ErrNotReady, http.StatusServiceUnavailable},
		{context.DeadlineExceeded, http.StatusServiceUnavailable},
		{errors.New("onnx: run failed"), http.StatusInternalServerError},
	} {
		f.mu.Lock()
		f.err = c.err
		f.mu.Unlock()
		s1, b1 := post(t, url+"/v1/forecast", v1)
		s2, b2 := post(t, url+"/v2/models/mesp/infer", v2)
		var e1 server.APIError
		var e2 struct {
			Error string `json:"error"`
		}
		if s1 != c.status || s2 != c.status || json.Unmarshal(b1, &e1) != nil || json.Unmarshal(b2, &e2) != nil ||
			e1.Error.Message != c.err.Error() || e2.Error != c.err.Error() {
			t.Errorf("%v: v1 %d %s, V2 %d %s; want %d with the message", c.err, s1, b1, s2, b2, c.status)
		}
	}
}
