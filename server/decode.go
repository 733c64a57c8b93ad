package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	"github.com/mesp-project/mesp/forecast"
)

// ForecastRequest is the body of POST /v1/forecast: a batch of functions,
// or one function given directly ({"id": ..., "counts": [...]}).
type ForecastRequest struct {
	Functions []FunctionCounts `json:"functions,omitempty"`
	FunctionCounts
}

// FunctionCounts is one function's recent per-minute counts, oldest first.
type FunctionCounts struct {
	ID     string    `json:"id,omitempty"`
	Counts []float64 `json:"counts,omitempty"`
}

// DecodeForecastRequest parses and bounds a request body. Values are
// checked later against the models in service (length, sign); here: valid
// JSON, numbers only, no unknown fields, a non-empty batch of at most
// maxBatch functions.
func DecodeForecastRequest(body []byte, maxBatch int) ([]forecast.Request, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var req ForecastRequest
	if err := dec.Decode(&req); err != nil {
		return nil, fmt.Errorf("%w: body is not a forecast request: %v", forecast.ErrInvalid, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: trailing data after the JSON object", forecast.ErrInvalid)
	}
	fns := req.Functions
	if req.Counts != nil || req.ID != "" {
		if len(fns) > 0 {
			return nil, fmt.Errorf("%w: give either \"functions\" or one function's \"counts\", not both", forecast.ErrInvalid)
		}
		fns = []FunctionCounts{req.FunctionCounts}
	}
	if len(fns) == 0 {
		return nil, fmt.Errorf("%w: empty batch: give \"functions\": [{\"id\", \"counts\"}]", forecast.ErrInvalid)
	}
	if len(fns) > maxBatch {
		return nil, fmt.Errorf("%w: batch of %d functions, at most %d", forecast.ErrInvalid, len(fns), maxBatch)
	}
	out := make([]forecast.Request, len(fns))
	for i, f := range fns {
		id := f.ID
		if id == "" {
			id = fmt.Sprintf("#%d", i)
		}
		out[i] = forecast.Request{ID: id, Counts: f.Counts}
	}
	return out, nil
}
