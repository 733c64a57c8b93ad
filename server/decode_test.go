package server

import (
	"errors"
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

// FuzzDecodeForecastRequest: any body either decodes into a bounded,
// non-empty batch or fails with ErrInvalid; it never panics.
func FuzzDecodeForecastRequest(f *testing.F) {
	for _, s := range []string{`{"counts":[1,2]}`, `{"functions":[{"id":"a","counts":[0]}]}`, `{}`, `[`, `{"counts":[1e400]}`} {
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
