package server

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"net/http"
	"slices"

	"github.com/labstack/echo/v4"

	"github.com/mesp-project/mesp/forecast"
	"github.com/mesp-project/mesp/funcid"
	"github.com/mesp-project/mesp/manifest"
)

// The KServe V2 / Open Inference Protocol (REST, JSON tensors; the binary
// tensor extension is not supported), beside /v1. Model names: "mesp"
// (routed, as /v1/forecast), "dense", or an expert's id ("cluster-3").
//
// Input "counts": FP32/FP64/INT32/INT64, shape [batch, minutes], data flat
// (row-major) or nested. Outputs: "forecast" FP32 [batch, 60] (the
// expected count); for "mesp" also "median" FP32 [batch, 60] and, when
// named in "outputs", each served quantile ("q0.9" FP32 [batch, 60]; they
// are not computed otherwise); "p_invoke"
// FP32 [batch, 60] (the probability of an invocation in each minute) where
// the model set has p_invoke models; for "mesp" also "cluster" INT64
// [batch] and "distance" FP64 [batch].

func (s *Server) registerV2() {
	e := s.echo
	e.GET("/v2", func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]any{"name": "mesp", "version": "1", "extensions": []string{}})
	})
	e.GET("/v2/health/live", func(c echo.Context) error { return c.NoContent(http.StatusOK) })
	e.GET("/v2/health/ready", func(c echo.Context) error {
		if _, ok := s.models.Catalog(); !ok {
			return v2Error(c, http.StatusServiceUnavailable, "models not loaded")
		}
		return c.NoContent(http.StatusOK)
	})
	e.GET("/v2/models/:name", s.v2Metadata)
	e.GET("/v2/models/:name/ready", s.v2Ready)
	e.POST("/v2/models/:name/infer", s.v2Infer)
}

// v2Tensor is an input tensor's header (its data go to the arena).
type v2Tensor struct {
	Name     string
	Shape    []int
	Datatype string
}

type v2TensorOut struct {
	Name     string `json:"name"`
	Shape    []int  `json:"shape"`
	Datatype string `json:"datatype"`
	Data     any    `json:"data"`
}

// v2Error answers in V2's error shape: {"error": "message"}.
func v2Error(c echo.Context, status int, msg string) error {
	return c.JSON(status, map[string]string{"error": msg})
}

// v2Model resolves a model name ("mesp", routed, or one loaded model's
// id) to the shortest input it takes; ok is false for an unknown name or
// before any models are loaded.
func (s *Server) v2Model(name string) (inputLen int, ok bool) {
	set, ok := s.models.Catalog()
	if !ok {
		return 0, false
	}
	if name == "mesp" {
		return set.MaxInputLen, true
	}
	inputLen, ok = set.InputLens[name]
	return inputLen, ok
}

func (s *Server) v2Metadata(c echo.Context) error {
	name := c.Param("name")
	inputLen, ok := s.v2Model(name)
	if !ok {
		return v2Error(c, http.StatusNotFound, fmt.Sprintf("unknown model %q", name))
	}
	outputs := []map[string]any{{"name": outForecast, "datatype": "FP32", "shape": []int{-1, manifest.Horizon}}}
	if set, ok := s.models.Catalog(); ok && set.PInvoke() {
		outputs = append(outputs, map[string]any{"name": outPInvoke, "datatype": "FP32", "shape": []int{-1, manifest.Horizon}})
	}
	if set, ok := s.models.Catalog(); ok && name == "mesp" {
		for _, q := range set.QuantileNames() {
			outputs = append(outputs, map[string]any{"name": q, "datatype": "FP32", "shape": []int{-1, manifest.Horizon}})
		}
	}
	if name == "mesp" {
		outputs = append(outputs, map[string]any{"name": outMedian, "datatype": "FP32", "shape": []int{-1, manifest.Horizon}},
			map[string]any{"name": "cluster", "datatype": "INT64", "shape": []int{-1}},
			map[string]any{"name": "distance", "datatype": "FP64", "shape": []int{-1}})
	}
	return c.JSON(http.StatusOK, map[string]any{
		"name": name, "versions": []string{"1"}, "platform": "onnxruntime_onnx",
		"inputs":  []map[string]any{{"name": "counts", "datatype": "FP32", "shape": []int{-1, -1}, "min_minutes": inputLen}},
		"outputs": outputs,
	})
}

func (s *Server) v2Ready(c echo.Context) error {
	if _, ok := s.v2Model(c.Param("name")); !ok {
		return v2Error(c, http.StatusNotFound, fmt.Sprintf("model %q not ready or unknown", c.Param("name")))
	}
	return c.NoContent(http.StatusOK)
}

func (s *Server) v2Infer(c echo.Context) error {
	name := c.Param("name")
	if _, ok := s.v2Model(name); !ok {
		return v2Error(c, http.StatusNotFound, fmt.Sprintf("unknown model %q", name))
	}
	mem := getRequestMemory()
	defer putRequestMemory(mem)
	release, err := s.readBody(c, mem)
	defer release()
	if err != nil {
		status, msg := s.statusOf(err, c)
		return v2Error(c, status, msg)
	}
	reqs, id, wantOut, counts, err := decodeV2(mem.body.Bytes(), s.opts.MaxBatch, s.maxCounts(), mem.counts[:0])
	mem.counts = counts
	if err != nil {
		return v2Error(c, http.StatusBadRequest, err.Error())
	}
	// The same admission and write timeout as v1's answers.
	done, err := s.admit(len(reqs))
	if err != nil {
		status, msg := s.statusOf(err, c)
		return v2Error(c, status, msg)
	}
	defer done()
	ctx, cancel := s.answerContext(c)
	defer cancel()
	var res []forecast.Result
	if name == "mesp" {
		// Only what is asked for runs: p_invoke alone spares the count
		// models, cluster and distance alone need routing only.
		var outs forecast.Outputs
		if len(wantOut) == 0 || wantOut[outForecast] || wantOut[outMedian] {
			outs |= forecast.Counts
		}
		if set, ok := s.models.Catalog(); ok && set.PInvoke() && (len(wantOut) == 0 || wantOut[outPInvoke]) {
			outs |= forecast.PInvoke
		}
		outs = wantOutputs(wantOut).models(outs)
		res, err = s.models.Predict(ctx, reqs, forecast.Routed, outs)
	} else {
		res, err = s.models.ForecastModel(ctx, reqs, name)
	}
	if err != nil {
		status, msg := s.statusOf(err, c)
		return v2Error(c, status, msg)
	}
	fc := make([]float32, 0, len(res)*manifest.Horizon)
	var med, pinv []float32
	cl := make([]int64, len(res))
	dist := make([]float64, len(res))
	for i, r := range res {
		fc = append(fc, r.Forecast...)
		med = append(med, r.Median...)
		pinv = append(pinv, r.PInvoke...)
		cl[i], dist[i] = int64(r.Cluster), r.Distance
	}
	all := []v2TensorOut{{Name: outForecast, Shape: []int{len(res), manifest.Horizon}, Datatype: "FP32", Data: fc}}
	if pinv != nil {
		all = append(all, v2TensorOut{Name: outPInvoke, Shape: []int{len(res), manifest.Horizon}, Datatype: "FP32", Data: pinv})
	}
	if name == "mesp" && len(med) == len(fc) {
		all = append(all, v2TensorOut{Name: outMedian, Shape: []int{len(res), manifest.Horizon}, Datatype: "FP32", Data: med})
	}
	if name == "mesp" {
		qt := quantileTensors(res, wantOut)
		for _, q := range slices.Sorted(maps.Keys(qt)) {
			all = append(all, v2TensorOut{Name: q, Shape: []int{len(res), manifest.Horizon}, Datatype: "FP32", Data: qt[q]})
		}
		all = append(all, v2TensorOut{Name: "cluster", Shape: []int{len(res)}, Datatype: "INT64", Data: cl},
			v2TensorOut{Name: "distance", Shape: []int{len(res)}, Datatype: "FP64", Data: dist})
	}
	var outs []v2TensorOut
	for _, o := range all {
		if len(wantOut) == 0 || wantOut[o.Name] {
			outs = append(outs, o)
		}
	}
	for n := range wantOut {
		found := false
		for _, o := range all {
			found = found || o.Name == n
		}
		if !found {
			return v2Error(c, http.StatusBadRequest, fmt.Sprintf("unknown output %q", n))
		}
	}
	return c.JSON(http.StatusOK, map[string]any{"model_name": name, "model_version": "1", "id": id, "outputs": outs})
}

// quantileTensors is each quantile named in want, its rows one after
// another, by name.
func quantileTensors(res []forecast.Result, want map[string]bool) map[string][]float32 {
	out := map[string][]float32{}
	for _, r := range res {
		for q, counts := range wantOutputs(want).quantiles(r) {
			out[q] = append(out[q], counts...)
		}
	}
	return out
}

// decodeV2 reads an inference request's "counts" tensor into one request
// per row, with the forecast routes' scanner and their bounds checked
// while scanning: one input, at most maxBatch rows of at most maxRow
// minutes (numbers beyond that stop the scan, whatever the shape says),
// at most maxOutputs outputs, "parameters" skipped within a depth bound.
// The counts go to arena, returned grown for reuse.
func decodeV2(body []byte, maxBatch, maxRow int, arena []float64) ([]forecast.Request, string, map[string]bool, []float64, error) {
	d := &requestDecoder{b: body, arena: arena, maxCounts: maxBatch * maxRow}
	var (
		id     string
		inputs int
		t      v2Tensor
		flat   []float64
		rows   int // nested rows seen, -1 when the data is flat
		want   = map[string]bool{}
	)
	err := d.object(func(key string) error {
		var err error
		switch key {
		case "id":
			id, err = d.string()
			if err == nil && len(id) > funcid.MaxLen {
				err = fmt.Errorf("request id of %d bytes, at most %d", len(id), funcid.MaxLen)
			}
		case "parameters":
			err = d.skipValue(0)
		case "inputs":
			err = d.array(func(n int) error {
				if inputs++; n > 0 {
					return errors.New("want exactly one input tensor named \"counts\"")
				}
				flat, rows, err = d.v2Tensor(&t, maxRow)
				return err
			})
		case "outputs":
			err = d.array(func(n int) error {
				if n >= maxOutputs {
					return d.errorf("more than %d outputs", maxOutputs)
				}
				return d.object(func(key string) error {
					switch key {
					case "name":
						name, err := d.string()
						want[name] = true
						return err
					case "parameters":
						return d.skipValue(0)
					}
					return d.errorf("unknown output field %q (known: name, parameters)", key)
				})
			})
		default:
			err = d.errorf("unknown field %q (known: id, parameters, inputs, outputs)", key)
		}
		return err
	})
	if err == nil && d.peek() != 0 {
		err = d.errorf("trailing data after the JSON object")
	}
	if err != nil {
		return nil, "", nil, d.arena, fmt.Errorf("body is not a V2 inference request: %w", err)
	}
	if inputs != 1 || t.Name != "counts" {
		return nil, "", nil, d.arena, errors.New("want exactly one input tensor named \"counts\"")
	}
	if err := checkDatatype(t.Datatype); err != nil {
		return nil, "", nil, d.arena, err
	}
	if len(t.Shape) != 2 || t.Shape[0] < 1 || t.Shape[1] < 1 {
		return nil, "", nil, d.arena, fmt.Errorf("input \"counts\": shape %v, want [batch, minutes]", t.Shape)
	}
	b, n := t.Shape[0], t.Shape[1]
	switch {
	case n > maxRow:
		return nil, "", nil, d.arena, fmt.Errorf("input \"counts\": %d minutes, at most %d", n, maxRow)
	case b > maxBatch:
		return nil, "", nil, d.arena, fmt.Errorf("input \"counts\": batch of %d, at most %d", b, maxBatch)
	case rows >= 0 && len(flat) != rows*n:
		return nil, "", nil, d.arena, fmt.Errorf("input \"counts\": a row of other than %d values for shape %v", n, t.Shape)
	case len(flat) != b*n:
		return nil, "", nil, d.arena, fmt.Errorf("input \"counts\": %d values for shape %v", len(flat), t.Shape)
	}
	reqs := make([]forecast.Request, b)
	for i := range reqs {
		reqs[i] = forecast.Request{ID: fmt.Sprintf("#%d", i), Counts: flat[i*n : (i+1)*n : (i+1)*n]}
	}
	return reqs, id, want, d.arena, nil
}

// checkDatatype refuses a tensor type that cannot hold counts.
func checkDatatype(dt string) error {
	switch dt {
	case "FP32", "FP64", "INT32", "INT64", "UINT32", "UINT64":
		return nil
	}
	return fmt.Errorf("input \"counts\": datatype %q, want FP32, FP64 or an integer type", dt)
}

// v2Tensor scans one input tensor into t (its data into the arena): the
// data flat, or nested one level (rows is then how many; -1 when flat).
func (d *requestDecoder) v2Tensor(t *v2Tensor, maxRow int) (data []float64, rows int, err error) {
	rows = -1
	err = d.object(func(key string) error {
		var err error
		switch key {
		case "name":
			t.Name, err = d.string()
		case "datatype":
			t.Datatype, err = d.string()
		case "shape":
			t.Shape = t.Shape[:0]
			err = d.array(func(n int) error {
				if n >= 8 {
					return d.errorf("shape of more than 8 dimensions")
				}
				v, err := d.number()
				if err == nil && (v != math.Trunc(v) || v < 0 || v > math.MaxInt32) {
					err = d.errorf("shape dimension %g, want a whole number", v)
				}
				t.Shape = append(t.Shape, int(v))
				return err
			})
		case "parameters":
			err = d.skipValue(0)
		case "data":
			if t.Datatype != "" {
				// Strings (BYTES) are not counts: say so, not "want a number".
				if err := checkDatatype(t.Datatype); err != nil {
					return err
				}
			}
			start := len(d.arena)
			if d.peek() == '[' && d.peekAfterBracket() == '[' {
				rows = 0
				err = d.array(func(int) error {
					if len(d.arena)-start >= d.maxCounts || rows >= d.maxCounts {
						return d.errorf("more than %d values", d.maxCounts)
					}
					rows++
					_, err := d.counts()
					return err
				})
			} else {
				_, err = d.counts()
			}
			data = d.arena[start:len(d.arena):len(d.arena)]
		default:
			err = d.errorf("unknown tensor field %q (known: name, shape, datatype, parameters, data)", key)
		}
		return err
	})
	return data, rows, err
}
