package promread_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mesp-project/mesp/history"
	"github.com/mesp-project/mesp/promread"
)

// The query API's answers, as Prometheus writes them, become minutes of
// the history (a sample at T is the minute that ended at T), and answers
// that cannot be one function's counts are errors, not guesses.
func TestReaderMapsSamplesAndRefusesAmbiguousAnswers(t *testing.T) {
	cases := []struct {
		name, body string
		want       []float64 // the history's last minutes
		err        string
	}{
		{"one series", `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[` +
			"1739999880" + `,"3"],[1739999940,"0"],[1740000000,"5"]]}]}}`, []float64{3, 0, 5}, ""},
		{"no series: nothing stored", `{"status":"success","data":{"resultType":"matrix","result":[]}}`, nil, ""},
		{"two series", `{"status":"success","data":{"resultType":"matrix","result":[{"values":[]},{"values":[]}]}}`, nil, "aggregate"},
		{"a query error", `{"status":"error","errorType":"bad_data","error":"parse error"}`, nil, "parse error"},
		{"not JSON", `<html>proxy error</html>`, nil, "not the query API"},
		{"NaN", `{"status":"success","data":{"resultType":"matrix","result":[{"values":[[1740000000,"NaN"]]}]}}`, nil, "bad observation"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var query string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				query = r.URL.Query().Get("query")
				w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			store := history.New(1440, 10)
			r := &promread.Reader{URL: srv.URL, Query: `sum(increase(x{function="$name"}[1m]))`, Functions: []string{"f"}, Store: store}
			err := r.Backfill(context.Background(), time.Unix(1740000000, 0))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if query != `sum(increase(x{function="f"}[1m]))` {
				t.Fatalf("query %q", query)
			}
			got, err := store.Window("f", 1740000000/60)
			if tc.want == nil {
				if !errors.Is(err, history.ErrUnknown) {
					t.Fatalf("no series: %v %v", got, err)
				}
				return
			}
			if err != nil || !slices.Equal(got[len(got)-3:], tc.want) {
				t.Fatalf("history %v, %v; want it to end %v", got, err, tc.want)
			}
		})
	}
}
