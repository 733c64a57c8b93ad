package server_test

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestAPIPageMatchesOpenAPIAndRoutes: the route table of docs/api.md is
// exactly the routes of openapi.json, and every one is served, so that the
// reference page cannot drift from the server.
func TestAPIPageMatchesOpenAPIAndRoutes(t *testing.T) {
	page, err := os.ReadFile("../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `(GET|POST|PUT|DELETE)` \\| `([^`]+)` \\|")
	documented := map[string]bool{}
	for _, m := range row.FindAllStringSubmatch(string(page), -1) {
		documented[m[1]+" "+m[2]] = true
	}
	b, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	inSpec := map[string]bool{}
	for path, ops := range doc.Paths {
		for method := range ops {
			if m := strings.ToUpper(method); m == "GET" || m == "POST" || m == "PUT" || m == "DELETE" {
				inSpec[m+" "+path] = true
			}
		}
	}
	if len(documented) < 10 {
		t.Fatalf("docs/api.md: %d routes in its table", len(documented))
	}
	for r := range documented {
		if !inSpec[r] {
			t.Errorf("docs/api.md names %s, which openapi.json does not have", r)
		}
	}
	for r := range inSpec {
		if !documented[r] {
			t.Errorf("openapi.json has %s, which docs/api.md's table does not name", r)
		}
	}
	ts := start(t, "")
	served := map[string]bool{}
	param := regexp.MustCompile(`:([a-z]+)`)
	for _, r := range ts.srv.Echo().Routes() {
		path := param.ReplaceAllString(r.Path, "{$1}")
		served[r.Method+" "+path] = true
		if strings.HasSuffix(path, "/*") { // a static tree serves its folder
			served[r.Method+" "+strings.TrimSuffix(path, "*")] = true
		}
	}
	for r := range documented {
		if !served[r] {
			t.Errorf("docs/api.md names %s, which the server does not serve", r)
		}
	}
}
