package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/mesp-project/mesp/forecast"
)

func TestDecodeForecastRequest(t *testing.T) {
	cases := []struct {
		name string
		body string
		n    int // functions; -1 for an error
	}{
		{"single", `{"id":"f","counts":[1,2,3]}`, 1},
		{"batch", `{"functions":[{"id":"a","counts":[1]},{"counts":[2]}]}`, 2},
		{"both", `{"id":"f","counts":[1],"functions":[{"counts":[1]}]}`, -1},
		{"empty", `{}`, -1},
		{"trailing", `{"counts":[1]} {}`, -1},
		{"string count", `{"counts":["1"]}`, -1},
		{"too many", `{"functions":[{"counts":[1]},{"counts":[1]},{"counts":[1]}]}`, -1},
		{"not json", `counts=1`, -1},
		{"whitespace and exponents", " {\n\t\"counts\" : [ 1e2 , -0.5E-1, 0 ] } \r\n", 1},
		{"escaped id", `{"id":"f\u00e9","counts":[1]}`, 1},
		{"escaped newline in id", `{"id":"f\u00e9\n","counts":[1]}`, -1},
		{"id of 254 bytes", `{"id":"` + strings.Repeat("a", 254) + `","counts":[1]}`, -1},
		{"id of 253 bytes", `{"id":"` + strings.Repeat("a", 253) + `","counts":[1]}`, 1},
		{"blank id", `{"id":"\t ","counts":[1]}`, -1},
		{"blank id in a batch", `{"functions":[{"id":"a","counts":[1]},{"id":" ","counts":[1]}]}`, -1},
		{"null counts element", `{"counts":[1,null]}`, -1},
		{"unknown field", `{"counts":[1],"window":5}`, -1},
		{"case-folded field", `{"Counts":[1]}`, -1},
		{"leading zero", `{"counts":[01]}`, -1},
		{"leading zeros", `{"counts":[1,00,2]}`, -1},
		{"integer at the end of the body", `{"counts":[12`, -1},
		{"bare dot", `{"counts":[1.]}`, -1},
		{"NaN", `{"counts":[NaN]}`, -1},
		{"Infinity", `{"counts":[Infinity]}`, -1},
		{"out of range", `{"counts":[1e400]}`, -1},
		{"trailing comma", `{"counts":[1,]}`, -1},
		{"missing comma", `{"counts":[1 2]}`, -1},
		{"unterminated", `{"counts":[1,2`, -1},
		{"control character in id", "{\"id\":\"a\tb\",\"counts\":[1]}", -1},
		{"invalid UTF-8 in id", "{\"id\":\"\xff\",\"counts\":[1]}", -1},
		{"nested array", `{"counts":[[1]]}`, -1},
		{"top-level array", `[{"counts":[1]}]`, -1},
	}
	for _, tc := range cases {
		reqs, err := DecodeForecastRequest([]byte(tc.body), 2)
		if tc.n < 0 {
			if !errors.Is(err, forecast.ErrInvalid) {
				t.Errorf("%s: err %v, want ErrInvalid", tc.name, err)
			}
			continue
		}
		if err != nil || len(reqs) != tc.n {
			t.Errorf("%s: %d requests, %v", tc.name, len(reqs), err)
		}
	}
	reqs, _ := DecodeForecastRequest([]byte(`{"functions":[{"counts":[1]},{"id":"x","counts":[1]}]}`), 2)
	if reqs[0].ID != "#0" || reqs[1].ID != "x" {
		t.Errorf("ids %q %q", reqs[0].ID, reqs[1].ID)
	}
}

func TestDecodeForecastRequestValues(t *testing.T) {
	// Plain integers take a fast path; its edges: 15 and 16 digits, a
	// space before the comma, zero last.
	reqs, err := DecodeForecastRequest([]byte(`{"functions":[{"id":"a\"b","counts":[0,12,-3.5,2.5e3,123456789012345678,-0,999999999999999,1234567890123456,7 ,10,0]}]}`), 2)
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{0, 12, -3.5, 2500, 123456789012345678, 0, 999999999999999, 1234567890123456, 7, 10, 0}
	if reqs[0].ID != `a"b` || len(reqs[0].Counts) != len(want) {
		t.Fatalf("got %+v", reqs[0])
	}
	for i, v := range want {
		if reqs[0].Counts[i] != v {
			t.Errorf("counts[%d] = %v, want %v", i, reqs[0].Counts[i], v)
		}
	}
	_, err = DecodeForecastRequest([]byte(`{"counts":[1,null]}`), 2)
	if err == nil || !strings.Contains(err.Error(), "counts[1] is null") {
		t.Errorf("null count: %v", err)
	}
}

// FuzzDecodeForecastRequest: any body either decodes into a bounded,
// non-empty batch or fails with ErrInvalid; it never panics; and whatever
// it accepts, encoding/json reads as the same request.
func FuzzDecodeForecastRequest(f *testing.F) {
	for _, s := range []string{`{"counts":[1,2]}`, `{"functions":[{"id":"a","counts":[0]}]}`, `{}`, `[`, `{"counts":[1e400]}`,
		`{"id":"\u00e9x","counts":[1.5e-3,-0,7]}`, `{"functions":[null,{"counts":null}]}`, `{"counts":[1,null]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		reqs, err := DecodeForecastRequest(body, 8)
		if err != nil {
			if !errors.Is(err, forecast.ErrInvalid) {
				t.Fatalf("error not ErrInvalid: %v", err)
			}
			return
		}
		var std ForecastRequest
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&std); err != nil {
			t.Fatalf("accepted what encoding/json rejects (%v): %q", err, body)
		}
		fns := std.Functions
		if len(fns) == 0 {
			fns = []FunctionCounts{std.FunctionCounts}
		}
		if len(fns) != len(reqs) {
			t.Fatalf("%d functions, encoding/json %d", len(reqs), len(fns))
		}
		for i, fn := range fns {
			if fn.ID != "" && fn.ID != reqs[i].ID {
				t.Fatalf("id %q, encoding/json %q", reqs[i].ID, fn.ID)
			}
			if !slices.Equal(fn.Counts, reqs[i].Counts) {
				t.Fatalf("counts %v, encoding/json %v", reqs[i].Counts, fn.Counts)
			}
		}
		if len(reqs) == 0 || len(reqs) > 8 {
			t.Fatalf("%d requests", len(reqs))
		}
		for _, r := range reqs {
			if strings.TrimSpace(r.ID) == "" {
				t.Fatal("empty id")
			}
		}
	})
}

// batchBody is a 64-function request of daily patterns (1,440 counts each).
func batchBody() []byte {
	var b bytes.Buffer
	b.WriteString(`{"functions":[`)
	for f := range 64 {
		if f > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":"fn-%d","counts":[`, f)
		for t := range 1440 {
			if t > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%d", (t*f*7919)%1000)
		}
		b.WriteString("]}")
	}
	b.WriteString("]}")
	return b.Bytes()
}

func BenchmarkDecodeForecastRequest64(b *testing.B) {
	body := batchBody()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := DecodeForecastRequest(body, 64); err != nil {
			b.Fatal(err)
		}
	}
}

// The peer: encoding/json into the same types, as the server did before.
func BenchmarkDecodeForecastRequest64EncodingJSON(b *testing.B) {
	body := batchBody()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		var req ForecastRequest
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			b.Fatal(err)
		}
	}
}

// DecodeForecastRequest decodes a whole body with no bound on counts: the
// decoder as the fuzz and table tests drive it.
func DecodeForecastRequest(body []byte, maxBatch int) ([]forecast.Request, error) {
	reqs, _, _, err := decodeForecastRequest(body, maxBatch, 0, nil)
	return reqs, err
}

// TestOpenAPIBoundsOutputsAsTheDecoderDoes: every "outputs" array of
// openapi.json allows exactly maxOutputs names, the bound both decoders
// (the V1 body and KServe V2's) enforce, so a client reading the schema
// is neither refused below it nor promised more.
func TestOpenAPIBoundsOutputsAsTheDecoderDoes(t *testing.T) {
	b, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	found := 0
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, child := range v {
				if o, ok := child.(map[string]any); ok && k == "outputs" && o["type"] == "array" {
					found++
					if o["maxItems"] != float64(maxOutputs) {
						t.Errorf("an outputs array allows %v names, the decoder %d", o["maxItems"], maxOutputs)
					}
				}
				walk(child)
			}
		case []any:
			for _, child := range v {
				walk(child)
			}
		}
	}
	walk(doc)
	if found == 0 {
		t.Fatal("openapi.json has no outputs array")
	}
}
