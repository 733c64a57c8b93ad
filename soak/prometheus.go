package soak

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// PrometheusFunctions are the functions the hostile Prometheus serves, by
// behaviour: honest, hung (never answers), dripping (a byte a second) and
// lying (samples a year ahead, from 1970, between minutes, NaN, negative,
// 1e30, beside honest ones).
var PrometheusFunctions = []string{"prom-ok-1", "prom-ok-2", "prom-hung", "prom-drip", "prom-lie"}

// Prometheus is a query_range endpoint that behaves as PrometheusFunctions
// say, for the function named between the first quotes of the query.
func Prometheus(stop <-chan struct{}) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		parts := strings.Split(q.Get("query"), `"`)
		if len(parts) < 2 {
			http.Error(w, `{"status":"error","error":"no function"}`, http.StatusBadRequest)
			return
		}
		start, _ := strconv.ParseInt(q.Get("start"), 10, 64)
		end, _ := strconv.ParseInt(q.Get("end"), 10, 64)
		var vals []string
		for t := start; t <= end; t += 60 {
			vals = append(vals, fmt.Sprintf(`[%d,"%d"]`, t, t/60%5))
		}
		switch name := parts[1]; {
		case name == "prom-hung":
			select {
			case <-stop:
			case <-r.Context().Done():
			}
			return
		case name == "prom-drip":
			for {
				if _, err := w.Write([]byte(" ")); err != nil {
					return
				}
				w.(http.Flusher).Flush()
				select {
				case <-stop:
					return
				case <-r.Context().Done():
					return
				case <-time.After(time.Second):
				}
			}
		case name == "prom-lie":
			vals = append(vals, fmt.Sprintf(`[%d,"7"]`, end+365*86400), `[60,"9"]`, fmt.Sprintf(`[%d,"3"]`, end-30),
				fmt.Sprintf(`[%d,"NaN"]`, end-60), fmt.Sprintf(`[%d,"-4"]`, end-120), fmt.Sprintf(`[%d,"1e30"]`, end-180))
		}
		fmt.Fprintf(w, `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[%s]}]}}`, strings.Join(vals, ","))
	})
}
