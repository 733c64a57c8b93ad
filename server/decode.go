package server

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/mesp-project/mesp/forecast"
	"github.com/mesp-project/mesp/funcid"
)

// ForecastRequest is the body of POST /v1/forecast: a batch of functions,
// or one function given directly ({"id": ..., "counts": [...]}).
type ForecastRequest struct {
	Functions []FunctionCounts `json:"functions,omitempty"`
	FunctionCounts
	// Policy overrides the pre-warm policy (POST /v1/prewarm only).
	Policy *PolicyJSON `json:"policy,omitempty"`
	// Outputs names the per-minute arrays to answer (POST /v1/prewarm
	// only): any of Outputs' keys; absent, all of them.
	Outputs []string `json:"outputs,omitempty"`
}

// requestOptions are a request's fields besides its functions.
type requestOptions struct {
	Policy  *PolicyJSON
	Outputs []string
}

// maxOutputs bounds a request's "outputs" while scanning: a set names
// forecast, median, p_invoke and each quantile level it serves (14 for the
// shipped set, whose levels run every hundredth from 0.9 to 0.99), a
// client may add levels between them; a million names are a hostile body.
const maxOutputs = 32

// PolicyJSON is a request's pre-warm policy: warm in a minute when its
// p_invoke is at least Threshold (default: the manifest's).
type PolicyJSON struct {
	Threshold *float64 `json:"threshold,omitempty"`
}

// FunctionCounts is one function's recent per-minute counts, oldest first.
type FunctionCounts struct {
	ID     string    `json:"id,omitempty"`
	Counts []float64 `json:"counts,omitempty"`
}

// decodeForecastRequest parses and bounds a request body. Values are
// checked later against the models in service (length, sign); here: valid
// JSON, numbers only (a null count is an error, not a zero), no unknown
// fields, a non-empty batch of at most maxBatch functions.
//
// The body is parsed by a small scanner for exactly this schema rather
// than encoding/json: a batch of 64 daily patterns is 92,160 numbers, and
// reflection-driven decoding of them cost more CPU than routing and
// inference together. Whatever it accepts, encoding/json accepts with the
// same values (FuzzDecodeForecastRequest checks it); it is stricter where
// encoding/json is lenient (null counts, case-insensitive keys, invalid
// UTF-8).
//
// It bounds each function's counts (maxCounts, 0: no bound) while
// scanning, appends every function's counts to arena, which it returns (grown if need be) so that
// the caller can reuse it once the requests are answered, and returns the
// request's other fields (policy, outputs).
func decodeForecastRequest(body []byte, maxBatch, maxCounts int, arena []float64) ([]forecast.Request, requestOptions, []float64, error) {
	d := &requestDecoder{b: body, arena: arena, maxBatch: maxBatch, maxCounts: maxCounts}
	reqs, opts, err := d.forecastRequests()
	return reqs, opts, d.arena, err
}

func (d *requestDecoder) forecastRequests() ([]forecast.Request, requestOptions, error) {
	req, err := d.request()
	if err != nil {
		return nil, requestOptions{}, fmt.Errorf("%w: body is not a forecast request: %v", forecast.ErrInvalid, err)
	}
	reqs, err := d.functions(req)
	return reqs, requestOptions{Policy: req.Policy, Outputs: req.Outputs}, err
}

func (d *requestDecoder) functions(req ForecastRequest) ([]forecast.Request, error) {
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
	if len(fns) > d.maxBatch {
		return nil, fmt.Errorf("%w: batch of %d functions, at most %d", forecast.ErrInvalid, len(fns), d.maxBatch)
	}
	out := make([]forecast.Request, len(fns))
	for i, f := range fns {
		id := f.ID
		if id == "" {
			id = fmt.Sprintf("#%d", i)
		} else if err := funcid.Validate(id); err != nil {
			// Logged, labelled and answered by id: it must name something,
			// briefly (omitted, the answer calls it "#i").
			return nil, fmt.Errorf("%w: function %d: %w", forecast.ErrInvalid, i, err)
		}
		out[i] = forecast.Request{ID: id, Counts: f.Counts}
	}
	return out, nil
}

// requestDecoder scans one ForecastRequest JSON document.
type requestDecoder struct {
	b []byte
	i int
	// arena holds every function's counts back to back; each function's
	// Counts is a capped window on it.
	arena []float64
	// maxBatch bounds the functions while scanning (0: no bound), so a body
	// of a million empty objects stops at the limit instead of decoding.
	maxBatch int
	// maxCounts bounds each function's counts while scanning (0: none).
	maxCounts int
}

func (d *requestDecoder) errorf(format string, args ...any) error {
	return fmt.Errorf("at byte %d: %s", d.i, fmt.Sprintf(format, args...))
}

func (d *requestDecoder) skipSpace() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// peek returns the next non-space byte (0 at the end).
func (d *requestDecoder) peek() byte {
	d.skipSpace()
	if d.i >= len(d.b) {
		return 0
	}
	return d.b[d.i]
}

func (d *requestDecoder) expect(c byte) error {
	if got := d.peek(); got != c {
		if got == 0 {
			return d.errorf("unexpected end of body, want %q", c)
		}
		return d.errorf("unexpected %q, want %q", got, c)
	}
	d.i++
	return nil
}

// literal consumes word (null) if it comes next.
func (d *requestDecoder) literal(word string) bool {
	if d.peek() == word[0] && len(d.b)-d.i >= len(word) && string(d.b[d.i:d.i+len(word)]) == word {
		d.i += len(word)
		return true
	}
	return false
}

func (d *requestDecoder) request() (ForecastRequest, error) {
	var req ForecastRequest
	err := d.object(func(key string) error {
		switch key {
		case "functions":
			if d.literal("null") {
				req.Functions = nil
				return nil
			}
			req.Functions = req.Functions[:0]
			return d.array(func(n int) error {
				if d.maxBatch > 0 && n >= d.maxBatch {
					return d.errorf("more than %d functions in the batch", d.maxBatch)
				}
				f, err := d.function()
				req.Functions = append(req.Functions, f)
				return err
			})
		case "policy":
			if d.literal("null") {
				req.Policy = nil
				return nil
			}
			p := &PolicyJSON{}
			req.Policy = p
			return d.object(func(key string) error {
				if key != "threshold" {
					return d.errorf("unknown policy field %q (known: threshold)", key)
				}
				if d.literal("null") {
					p.Threshold = nil
					return nil
				}
				v, err := d.number()
				p.Threshold = &v
				return err
			})
		case "outputs":
			if d.literal("null") {
				req.Outputs = nil
				return nil
			}
			req.Outputs = []string{} // empty, not absent
			err := d.array(func(n int) error {
				if n >= maxOutputs {
					return d.errorf("more than %d names", maxOutputs)
				}
				o, err := d.string()
				req.Outputs = append(req.Outputs, o)
				return err
			})
			if err != nil {
				return fmt.Errorf("\"outputs\" (an array of output names): %w", err)
			}
			return nil
		default:
			return d.functionField(key, &req.FunctionCounts)
		}
	})
	if err != nil {
		return req, err
	}
	if d.peek() != 0 {
		return req, d.errorf("trailing data after the JSON object")
	}
	return req, nil
}

func (d *requestDecoder) function() (FunctionCounts, error) {
	var f FunctionCounts
	if d.literal("null") {
		return f, nil
	}
	err := d.object(func(key string) error { return d.functionField(key, &f) })
	return f, err
}

func (d *requestDecoder) functionField(key string, f *FunctionCounts) error {
	switch key {
	case "id":
		if d.literal("null") {
			f.ID = ""
			return nil
		}
		s, err := d.string()
		f.ID = s
		return err
	case "counts":
		if d.literal("null") {
			return d.errorf("counts is null, want an array of per-minute counts")
		}
		c, err := d.counts()
		f.Counts = c
		return err
	default:
		return d.errorf("unknown field %q", key)
	}
}

// object parses {"key": value, ...}, calling field for each value. The
// key is the body's own bytes when written without escapes (field must
// not keep it): no allocation per field of a long array of objects.
func (d *requestDecoder) object(field func(key string) error) error {
	return d.sequence('{', '}', "a field", func(int) error {
		if d.peek() != '"' {
			return d.errorf("want a field name in quotes")
		}
		var key string
		start := d.i
		if raw, err := d.plainString(); err == nil && utf8.Valid(raw) {
			key = unsafe.String(unsafe.SliceData(raw), len(raw))
		} else {
			d.i = start
			if key, err = d.string(); err != nil {
				return err
			}
		}
		if err := d.expect(':'); err != nil {
			return err
		}
		return field(key)
	})
}

// array parses [v, ...], calling elem for each element.
func (d *requestDecoder) array(elem func(i int) error) error {
	return d.sequence('[', ']', "an element", elem)
}

// sequence parses open, then items separated by commas, then end (or
// open and end alone).
func (d *requestDecoder) sequence(open, end byte, what string, item func(n int) error) error {
	if err := d.expect(open); err != nil {
		return err
	}
	if d.peek() == end {
		d.i++
		return nil
	}
	for n := 0; ; n++ {
		if err := item(n); err != nil {
			return err
		}
		switch d.peek() {
		case ',':
			d.i++
		case end:
			d.i++
			return nil
		default:
			return d.errorf("want ',' or %q after %s", end, what)
		}
	}
}

func (d *requestDecoder) counts() ([]float64, error) {
	start := len(d.arena)
	b := d.b
	err := d.array(func(n int) error {
		if d.maxCounts > 0 && n >= d.maxCounts {
			return d.errorf("more than %d counts for one function (at most a day of minutes)", d.maxCounts)
		}
		// Fast path for what nearly every count is: a plain integer of at
		// most 15 digits written compactly, right before ',' or ']'.
		// Anything else (a space, a sign, a fraction, an exponent, a
		// leading zero before a digit) takes number().
		if mant, j := integer(b, d.i); j > d.i && j-d.i <= 15 && j < len(b) && (b[j] == ',' || b[j] == ']') {
			d.arena = append(d.arena, float64(mant))
			d.i = j
			return nil
		}
		if d.literal("null") {
			return d.errorf("counts[%d] is null, want a number", n)
		}
		v, err := d.number()
		if err != nil {
			return fmt.Errorf("counts[%d]: %w", n, err)
		}
		d.arena = append(d.arena, v)
		return nil
	})
	end := len(d.arena)
	if end == start {
		return []float64{}, err // present but empty: not nil
	}
	return d.arena[start:end:end], err
}

// number parses one JSON number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
// Integers of up to 15 digits (per-minute counts) convert exactly without
// strconv.
func (d *requestDecoder) number() (float64, error) {
	d.skipSpace()
	start := d.i
	b := d.b
	i := d.i
	neg := i < len(b) && b[i] == '-'
	if neg {
		i++
	}
	digits := i
	mant, i := integer(b, i)
	if i == digits {
		return 0, d.errorf("want a number")
	}
	simple := i-digits <= 15
	if i < len(b) && b[i] == '.' {
		j := skipDigits(b, i+1)
		if j == i+1 {
			d.i = j
			return 0, d.errorf("want a digit after '.'")
		}
		i, simple = j, false
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := skipDigits(b, i)
		if j == i {
			d.i = j
			return 0, d.errorf("want a digit in the exponent")
		}
		i, simple = j, false
	}
	d.i = i
	if simple {
		v := float64(mant)
		if neg {
			v = -v
		}
		return v, nil
	}
	// The bytes are not retained by ParseFloat: no copy needed.
	text := b[start:i]
	v, err := strconv.ParseFloat(unsafe.String(&text[0], len(text)), 64)
	if err != nil || math.IsInf(v, 0) {
		d.i = start
		return 0, d.errorf("number %s is out of range", text)
	}
	return v, nil
}

// integer scans a JSON number's integer part, 0 or [1-9][0-9]*, at b[i:]:
// its value (exact up to 15 digits) and the index after it, i if there is
// none. Per-minute counts are integers, so this is the routine path.
func integer(b []byte, i int) (mant uint64, j int) {
	switch {
	case i < len(b) && b[i] == '0':
		return 0, i + 1
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for j = i; j < len(b) && b[j] >= '0' && b[j] <= '9'; j++ {
			mant = mant*10 + uint64(b[j]-'0')
		}
		return mant, j
	}
	return 0, i
}

// skipDigits returns the index after the run of digits at b[i:].
func skipDigits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

// peekAfterBracket is the first non-space byte after the '[' at d.i.
func (d *requestDecoder) peekAfterBracket() byte {
	for i := d.i + 1; i < len(d.b); i++ {
		switch c := d.b[i]; c {
		case ' ', '\t', '\n', '\r':
		default:
			return c
		}
	}
	return 0
}

// maxSkipDepth bounds the nesting of a value skipped unread: deep nesting
// is how a small body makes a recursive parser spend a large stack.
const maxSkipDepth = 16

// skipValue scans past one JSON value of any kind (fields a schema allows
// but does not use, such as V2's "parameters").
func (d *requestDecoder) skipValue(depth int) error {
	if depth > maxSkipDepth {
		return d.errorf("nested more than %d deep", maxSkipDepth)
	}
	switch c := d.peek(); {
	case c == '{':
		return d.object(func(string) error { return d.skipValue(depth + 1) })
	case c == '[':
		return d.array(func(int) error { return d.skipValue(depth + 1) })
	case c == '"':
		_, err := d.string()
		return err
	case d.literal("true"), d.literal("false"), d.literal("null"):
		return nil
	default:
		_, err := d.number()
		return err
	}
}

// plainString scans a JSON string without escapes and returns its bytes
// in the body (valid until the body is reused): for values such as
// timestamps that are parsed, never kept.
func (d *requestDecoder) plainString() ([]byte, error) {
	if err := d.expect('"'); err != nil {
		return nil, err
	}
	for i := d.i; i < len(d.b); i++ {
		switch c := d.b[i]; {
		case c == '"':
			raw := d.b[d.i:i]
			d.i = i + 1
			return raw, nil
		case c == '\\' || c < 0x20:
			d.i = i
			return nil, d.errorf("want a string without escapes or control characters")
		}
	}
	d.i = len(d.b)
	return nil, d.errorf("unterminated string")
}

// stringLike parses a JSON string, returning prev itself, not a copy,
// when the string is prev written without escapes.
func (d *requestDecoder) stringLike(prev string) (string, error) {
	if n := len(prev); n > 0 && d.peek() == '"' && len(d.b)-d.i > n+1 && d.b[d.i+1+n] == '"' &&
		string(d.b[d.i+1:d.i+1+n]) == prev && !strings.ContainsAny(prev, "\\\"") {
		d.i += n + 2
		return prev, nil
	}
	return d.string()
}

// string parses a JSON string; escapes are rare in ids, and are left to
// encoding/json.
func (d *requestDecoder) string() (string, error) {
	if err := d.expect('"'); err != nil {
		return "", err
	}
	start := d.i - 1
	escaped := false
	for i := d.i; i < len(d.b); i++ {
		switch c := d.b[i]; {
		case c == '"':
			raw := d.b[start : i+1]
			d.i = i + 1
			// encoding/json would replace invalid UTF-8 silently.
			if !utf8.Valid(raw) {
				return "", d.errorf("string is not valid UTF-8")
			}
			if !escaped {
				return string(raw[1 : len(raw)-1]), nil
			}
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return "", d.errorf("bad string: %v", err)
			}
			return s, nil
		case c == '\\':
			escaped = true
			i++ // the escaped byte cannot end the string
		case c < 0x20:
			d.i = i
			return "", d.errorf("control character in a string")
		}
	}
	d.i = len(d.b)
	return "", d.errorf("unterminated string")
}
