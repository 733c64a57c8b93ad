package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestPrecedence(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mesp.yaml")
	yaml := "models: /from/file\nserver:\n  addr: file:1\n  admin_token: file-token\n  read_timeout: 3s\nort:\n  intra_op_threads: 2\n"
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MESP_SERVER__ADMIN_TOKEN", "env-token")
	t.Setenv("MESP_SERVER__ADDR", "env:2")
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	fs.String("addr", "", "")
	fs.String("models", "", "")
	fs.Int("other", 0, "not a setting")
	if err := fs.Parse([]string{"--addr", "flag:3", "--other", "5"}); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path, fs, map[string]string{"addr": "server.addr"})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name      string
		got, want any
	}{
		{"flag beats env and file", c.Server.Addr, "flag:3"},
		{"env beats file (key with underscore)", c.Server.AdminToken, "env-token"},
		{"file beats default", c.ORT.IntraOpThreads, 2},
		{"unset flag does not override file", c.Models, "/from/file"},
		{"duration from file", c.Server.ReadTimeout, 3 * time.Second},
		{"default kept", c.ORT.Provider, "cpu"},
	}
	for _, tc := range cases {
		if tc.got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}

func TestValidateRejectsUnknownProvider(t *testing.T) {
	t.Setenv("MESP_ORT__PROVIDER", "tpu")
	if _, err := Load("", nil, nil); err == nil {
		t.Fatal("want an error for provider tpu")
	}
}

func TestMissingFileIsAnError(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "nope.yaml"), nil, nil); err == nil {
		t.Fatal("want an error for a missing config file")
	}
}

// TestTyposAndBadValuesAreRefused: an unknown key from the file or the
// environment, and an invalid value, stop the start with a message that
// names them; the tools' own MESP_ variables are not settings.
func TestTyposAndBadValuesAreRefused(t *testing.T) {
	cases := []struct {
		name, yaml, env, val, want string
	}{
		{"env typo", "", "MESP_SERVER__MAXBATCH", "10", `"server.maxbatch"`},
		{"file typo", "server:\n  max_batchs: 3\n", "", "", `"server.max_batchs"`},
		{"unknown section", "sever:\n  addr: x\n", "", "", `"sever.addr"`},
		{"log level", "log:\n  level: verbose\n", "", "", `log.level "verbose"`},
		{"log format", "", "MESP_LOG__FORMAT", "xml", `log.format "xml"`},
		{"decide quantile one", "decide:\n  quantiles: [0.9, 1]\n", "", "", `decide.quantiles [0.9 1]`},
		{"decide quantile under the median", "", "MESP_DECIDE__QUANTILES", "0.2", `decide.quantiles [0.2]`},
		{"negative decide workers", "", "MESP_DECIDE__WORKERS", "-1", `decide.workers -1`},
		{"negative rows per run", "", "MESP_ORT__MAX_ROWS_PER_RUN", "-1", `ort.max_rows_per_run`},
		{"negative go memory limit", "", "MESP_SERVER__GO_MEMORY_LIMIT_BYTES", "-1", `server.go_memory_limit_bytes`},
		{"go memory limit not a number", "server:\n  go_memory_limit_bytes: 1GiB\n", "", "", `go_memory_limit_bytes`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := ""
			if tc.yaml != "" {
				path = filepath.Join(t.TempDir(), "mesp.yaml")
				os.WriteFile(path, []byte(tc.yaml), 0o644)
			}
			if tc.env != "" {
				t.Setenv(tc.env, tc.val)
			}
			_, err := Load(path, nil, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one naming %s", err, tc.want)
			}
		})
	}
	// the table's levels from the environment, as a list
	// list settings from the environment, comma-separated
	t.Setenv("MESP_DECIDE__QUANTILES", "0.5,0.99")
	t.Setenv("MESP_PROMETHEUS__FUNCTIONS", "fa, fb")
	if c, err := Load("", nil, nil); err != nil || !slices.Equal(c.Decide.Quantiles, []float64{0.5, 0.99}) || !slices.Equal(c.Prometheus.Functions, []string{"fa", "fb"}) {
		t.Fatalf("lists from the environment: %v and %q, %v", c.Decide.Quantiles, c.Prometheus.Functions, err)
	}
	os.Unsetenv("MESP_DECIDE__QUANTILES")
	os.Unsetenv("MESP_PROMETHEUS__FUNCTIONS")
	t.Setenv("MESP_CACHE", "/tmp/x")
	t.Setenv("MESP_PYTHON", "/usr/bin/python3")
	if _, err := Load("", nil, nil); err != nil {
		t.Fatalf("tool variables taken for settings: %v", err)
	}
}

// TestPrometheusReadModes: a query with $name needs the functions listed;
// one without it reads the fleet grouped by a label, with a valid match
// and a slice and body bound that can hold an answer.
func TestPrometheusReadModes(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"per function, listed", "prometheus:\n  url: http://p:9090\n  query: 'x{function=\"$name\"}'\n  functions: [a]\n", ""},
		{"per function, none listed", "prometheus:\n  url: http://p:9090\n  query: 'x{function=\"$name\"}'\n", "want prometheus.functions"},
		{"the default: grouped, nothing listed", "prometheus:\n  url: http://p:9090\n", ""},
		{"grouped, discovered", "prometheus:\n  url: http://p:9090\n  query: sum by (fn) (increase(x[1m]))\n  label: fn\n", ""},
		{"grouped, a match", "prometheus:\n  url: http://p:9090\n  query: sum by (function) (x)\n  match: '^prod/'\n", ""},
		{"grouped, a bad match", "prometheus:\n  url: http://p:9090\n  query: sum by (function) (x)\n  match: '(prod'\n", "prometheus.match"},
		{"grouped, slices under a minute", "prometheus:\n  url: http://p:9090\n  query: sum by (function) (x)\n  slice: 30s\n", "prometheus.slice"},
		{"grouped, no label", "prometheus:\n  url: http://p:9090\n  query: sum by (function) (x)\n  label: ''\n", "prometheus.label"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "mesp.yaml")
			os.WriteFile(path, []byte(tc.yaml), 0o644)
			_, err := Load(path, nil, nil)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// TestShardIndexFromTheHostName: a StatefulSet's pods are name-0..name-N;
// index -1 takes that ordinal, and a host name without one is an error.
func TestShardIndexFromTheHostName(t *testing.T) {
	for _, c := range []struct {
		index int
		host  string
		want  int
		ok    bool
	}{{2, "anything", 2, true}, {-1, "mesp-3", 3, true}, {-1, "mesp-scaler-12", 12, true}, {-1, "mesp", 0, false}, {-1, "mesp-x", 0, false}} {
		got, err := Shard{Index: c.index, Replicas: 20}.ShardIndex(c.host)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("index %d on %q: %d, %v; want %d", c.index, c.host, got, err, c.want)
		}
	}
	path := filepath.Join(t.TempDir(), "mesp.yaml")
	os.WriteFile(path, []byte("shard: {replicas: 3, index: 3}\n"), 0o644)
	if _, err := Load(path, nil, nil); err == nil || !strings.Contains(err.Error(), "shard.index") {
		t.Fatalf("index 3 of 3 replicas: %v", err)
	}
}
