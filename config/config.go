// Package config is MESP's one configuration: defaults, then a YAML file,
// then MESP_* environment variables, then command-line flags (koanf).
//
// Environment variables map to keys with a double underscore between levels
// (MESP_SERVER__ADMIN_TOKEN is server.admin_token), so keys that contain an
// underscore survive.
package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/env"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/providers/posflag"
	"github.com/knadh/koanf/v2"
	"github.com/spf13/pflag"

	"github.com/mesp-project/mesp/tlsfiles"
)

// ORTVersion is the ONNX Runtime release that onnxruntime_go v1.33.0 speaks
// to (C API 29); scripts/setup-ort.sh fetches exactly this build.
const ORTVersion = "1.29.0"

// Config is every setting of every subcommand.
type Config struct {
	// Models is the folder with manifest.json, clusters.json and the ONNX files.
	Models string `koanf:"models"`
	ORT    ORT    `koanf:"ort"`
	Server Server `koanf:"server"`
	Router Router `koanf:"router"`
	Log    Log    `koanf:"log"`
	// History, Scaler and Prometheus make MESP a KEDA external scaler
	// that keeps each function's last day itself.
	History    History    `koanf:"history"`
	Scaler     Scaler     `koanf:"scaler"`
	Prometheus Prometheus `koanf:"prometheus"`
	Decide     Decide     `koanf:"decide"`
	Shard      Shard      `koanf:"shard"`
}

// History configures the per-function store of per-minute counts.
type History struct {
	// MaxFunctions bounds the functions held (1.6 KiB each whose minutes
	// are whole counts up to 255, 3.1 KiB up to 65,535, 6.1 KiB for larger
	// or fractional counts: history.TestMemoryPerFunction); at the
	// limit, functions silent for a day make room, else a push for a new
	// function is refused (HTTP 507).
	MaxFunctions int `koanf:"max_functions"`
	// Snapshot is the file pushed history is saved to every SnapshotEvery
	// and at a clean stop, and loaded from at start; empty: history lives
	// in memory only (Prometheus' can be read again, pushes cannot).
	Snapshot      string        `koanf:"snapshot"`
	SnapshotEvery time.Duration `koanf:"snapshot_every"`
}

// TLS names a listener's certificate files (PEM, read again when they
// change); all empty: plain TCP.
type TLS struct {
	CertFile string `koanf:"cert_file"`
	KeyFile  string `koanf:"key_file"`
	// ClientCAFile, when set, makes clients present a certificate this CA
	// signed (mutual TLS).
	ClientCAFile string `koanf:"client_ca_file"`
}

// Files is the set the tlsfiles package serves.
func (t TLS) Files() tlsfiles.Files {
	return tlsfiles.Files{Cert: t.CertFile, Key: t.KeyFile, ClientCA: t.ClientCAFile}
}

// Scaler configures KEDA's external scaler protocol over gRPC.
type Scaler struct {
	// GRPCAddr is the gRPC listen address; empty: no scaler.
	GRPCAddr string `koanf:"grpc_addr"`
	TLS      TLS    `koanf:"tls"`
	// MaxStreams bounds the StreamIsActive streams open at once (one per
	// ScaledObject with an external-push trigger); beyond it a stream is
	// refused with ResourceExhausted.
	MaxStreams int `koanf:"max_streams"`
	// StreamEvery is how often StreamIsActive re-decides.
	StreamEvery time.Duration `koanf:"stream_every"`
}

// Shard is this replica's share of a fleet run as several replicas
// (package shard): it keeps, reads and decides only the functions that
// rendezvous hashing of their ids gives it.
type Shard struct {
	// Replicas is how many replicas split the fleet (1: this one owns
	// every function).
	Replicas int `koanf:"replicas"`
	// Index is this replica's, 0..Replicas-1; -1 takes the ordinal at the
	// end of the host name (a StatefulSet's pod mesp-2 is replica 2).
	Index int `koanf:"index"`
}

// ShardIndex resolves Index -1 from the host name's ordinal suffix.
func (s Shard) ShardIndex(hostname string) (int, error) {
	if s.Index >= 0 {
		return s.Index, nil
	}
	i := strings.LastIndexByte(hostname, '-')
	n, err := strconv.Atoi(hostname[i+1:])
	if i < 0 || err != nil || n < 0 {
		return 0, fmt.Errorf("config: shard.index -1: host name %q has no ordinal suffix (name-N)", hostname)
	}
	return n, nil
}

// Decide configures the decision table: every held function's answer
// computed once per minute, which KEDA's calls and GET /v1/decisions read.
type Decide struct {
	// Enabled runs the loop (the history store's functions only).
	Enabled bool `koanf:"enabled"`
	// Deadline is how long after a minute's boundary the minute is taken
	// as complete and decided.
	Deadline time.Duration `koanf:"deadline"`
	// Batch is how many functions one model run takes.
	Batch int `koanf:"batch"`
	// Workers is how many batches run at once (0: one per core).
	Workers int `koanf:"workers"`
	// Nice is the scheduling nice value of the threads that decide (0:
	// the server's own priority).
	Nice int `koanf:"nice"`
	// MaxAge is how long after its own minute a table answers (its
	// forecast for the minutes from now on) until the next is decided.
	MaxAge time.Duration `koanf:"max_age"`
	// Quantiles are the quantile levels of each minute's count the table
	// keeps for KEDA's demand (a trigger's metadata quantile; 0.5 is the
	// median): a trigger asking for another computes. Each level kept
	// costs 60 numbers a function.
	Quantiles []float64 `koanf:"quantiles"`
}

// Prometheus configures the reader that fills the history from Prometheus.
type Prometheus struct {
	// URL of the Prometheus server; empty: no reader.
	URL string `koanf:"url"`
	// Query is PromQL giving per-minute counts: with $name, one series for
	// that function, one query per function of Functions; without it, one
	// query for the fleet whose series Label names (Functions and Match,
	// when set, limit which are read).
	Query     string   `koanf:"query"`
	Functions []string `koanf:"functions"`
	// Label names the function in a grouped query's series.
	Label string `koanf:"label"`
	// Match is a regular expression a grouped query's function must match
	// to be read (empty: every one).
	Match string `koanf:"match"`
	// Slice is the span each grouped query reads: the day's backfill in
	// slices, memory bounded by one.
	Slice time.Duration `koanf:"slice"`
	// MaxBodyBytes bounds a grouped query's answer.
	MaxBodyBytes int64 `koanf:"max_body_bytes"`
	// Refresh is how often the last minutes are read again (whole
	// minutes, just after each minute closes).
	Refresh time.Duration `koanf:"refresh"`
	// Timeout bounds each query, its answer included.
	Timeout time.Duration `koanf:"timeout"`
	// Concurrency is how many queries run at once.
	Concurrency int `koanf:"concurrency"`
	// MaxLag is how old a function's last successful read may be before
	// the scaler answers Unavailable for it instead of deciding.
	MaxLag time.Duration `koanf:"max_lag"`
}

// ORT configures ONNX Runtime.
type ORT struct {
	// Library is the path of libonnxruntime.so; empty means the cached CPU
	// build that scripts/setup-ort.sh installs.
	Library string `koanf:"library"`
	// Provider is "cpu" or "cuda" (needs a GPU build of the library).
	Provider       string `koanf:"provider"`
	CUDADevice     int    `koanf:"cuda_device"`
	IntraOpThreads int    `koanf:"intra_op_threads"`
	// BatchWait bounds how long a small request waits for others to share
	// one Run call while another Run of its model is in flight (an idle
	// model runs at once); 0 disables batching.
	BatchWait time.Duration `koanf:"batch_wait"`
	MaxBatch  int           `koanf:"max_batch"`
	// MaxRowsPerRun splits a model call of more rows into runs of at most
	// that many (onnx.Options.MaxRowsPerRun): ONNX Runtime's arena keeps
	// the largest run's intermediate tensors; 0: no split.
	MaxRowsPerRun int `koanf:"max_rows_per_run"`
}

// Server configures the HTTP server.
type Server struct {
	Addr       string `koanf:"addr"`
	AdminToken string `koanf:"admin_token"`
	// WriteToken is the bearer token POST /v1/observe requires; empty:
	// writes are taken from loopback clients only (and, with mutual TLS,
	// from clients with a certificate).
	WriteToken   string `koanf:"write_token"`
	TLS          TLS    `koanf:"tls"`
	MaxBatch     int    `koanf:"max_batch"`
	MaxBodyBytes int64  `koanf:"max_body_bytes"`
	// MaxInflightFunctions bounds the functions being answered at once,
	// over all requests; beyond it requests get 503 with Retry-After.
	MaxInflightFunctions int `koanf:"max_inflight_functions"`
	// MaxInflightBodyBytes bounds the request bodies held at once, over all
	// requests, before they are decoded; beyond it requests get 503 with
	// Retry-After. With max_body_bytes it bounds what clients can make the
	// server hold.
	MaxInflightBodyBytes int64 `koanf:"max_inflight_body_bytes"`
	// MaxConnections bounds the open HTTP connections; more wait in the
	// kernel's accept queue (0: no bound).
	MaxConnections  int           `koanf:"max_connections"`
	ReadTimeout     time.Duration `koanf:"read_timeout"`
	WriteTimeout    time.Duration `koanf:"write_timeout"`
	ShutdownTimeout time.Duration `koanf:"shutdown_timeout"`
	Watch           bool          `koanf:"watch"`
	// GoMemoryLimitBytes is the Go runtime's soft memory limit
	// (runtime/debug.SetMemoryLimit): near it the collector runs more
	// often instead of letting the heap grow to twice what is live, which
	// a whole minute's decision table, built while the last one still
	// answers, would otherwise make the process's largest figure. It
	// covers Go's memory only, not ONNX Runtime's and the C allocator's
	// (310-360 MiB with the shipped set under load, make bench-fleet's peak
	// RSS less the Go runtime's): set it to the container's limit less that.
	// 0: Go's own (the GOMEMLIMIT variable where set, else no limit).
	GoMemoryLimitBytes int64 `koanf:"go_memory_limit_bytes"`
}

// Router configures routing.
type Router struct {
	// OODDir receives out-of-distribution patterns; empty disables the log.
	OODDir string `koanf:"ood_dir"`
	// OODMaxBytes bounds one OOD log file before it is rotated.
	OODMaxBytes int64 `koanf:"ood_max_bytes"`
	OODKeep     int   `koanf:"ood_keep"`
	// CountTrees blends the manifest's count trees, where it has them,
	// into every routed forecast; false serves without them (less CPU per
	// forecast for less accuracy: docs/benchmarks.md, Serving).
	CountTrees bool `koanf:"count_trees"`
	// UpperShare derives the expected count from the served upper
	// quantile where the manifest says so (manifest.Expected); false
	// serves the level's median for it (a forecast runs one graph fewer,
	// and the hour's volume falls short: docs/configuration.md).
	UpperShare bool `koanf:"upper_share"`
	// Timers lets the timers' expert (package periodic) answer the counts
	// of timer-like patterns in phase; false: the count models answer
	// every pattern.
	Timers bool `koanf:"timers"`
	// Stop lets the manifest's stop model (manifest.Stop) answer the next
	// minute's p_invoke, weighing the chance that a function stopped for
	// good; false serves the p_invoke before it (a platform whose
	// functions seldom stop; choose its threshold on its own mix).
	Stop bool `koanf:"stop"`
}

// Log configures structured logging.
type Log struct {
	Level  string `koanf:"level"`
	Format string `koanf:"format"` // "text" or "json"
}

// Defaults are the values before any file, environment or flag.
func Defaults() map[string]any {
	return map[string]any{
		"models":                         "models",
		"ort.library":                    "",
		"ort.provider":                   "cpu",
		"ort.cuda_device":                0,
		"ort.intra_op_threads":           1,
		"ort.batch_wait":                 "500us",
		"ort.max_batch":                  256,
		"ort.max_rows_per_run":           64,
		"server.addr":                    "127.0.0.1:8080",
		"server.admin_token":             "",
		"server.write_token":             "",
		"server.tls.cert_file":           "",
		"server.tls.key_file":            "",
		"server.tls.client_ca_file":      "",
		"server.max_batch":               1024,
		"server.max_body_bytes":          int64(32 << 20),
		"server.max_inflight_functions":  4096,
		"server.max_inflight_body_bytes": int64(128 << 20),
		"server.go_memory_limit_bytes":   int64(0),
		"server.max_connections":         1024,
		"server.read_timeout":            "10s",
		"server.write_timeout":           "30s",
		"server.shutdown_timeout":        "15s",
		"server.watch":                   true,
		"router.ood_dir":                 "",
		"router.ood_max_bytes":           int64(64 << 20),
		"router.ood_keep":                4,
		"router.count_trees":             true,
		"router.upper_share":             true,
		"router.timers":                  true,
		"router.stop":                    true,
		"log.level":                      "info",
		"log.format":                     "text",
		"history.max_functions":          100000,
		"history.snapshot":               "",
		"history.snapshot_every":         "1m",
		"scaler.grpc_addr":               "",
		"scaler.tls.cert_file":           "",
		"scaler.tls.key_file":            "",
		"scaler.tls.client_ca_file":      "",
		"scaler.max_streams":             1000,
		"scaler.stream_every":            "1m",
		"shard.replicas":                 1,
		"shard.index":                    0,
		"decide.enabled":                 true,
		"decide.deadline":                "10s",
		"decide.batch":                   256,
		"decide.workers":                 0,
		"decide.nice":                    10,
		"decide.max_age":                 "2m",
		"decide.quantiles":               []float64{0.9},
		"prometheus.url":                 "",
		"prometheus.query":               `sum by (function) (increase(function_invocations_total[1m]))`,
		"prometheus.functions":           []string{},
		"prometheus.label":               "function",
		"prometheus.match":               "",
		"prometheus.slice":               "1h",
		"prometheus.max_body_bytes":      256 << 20,
		"prometheus.refresh":             "1m",
		"prometheus.timeout":             "10s",
		"prometheus.concurrency":         8,
		"prometheus.max_lag":             "3m",
	}
}

// Load builds the configuration: defaults, then the YAML file (if path is
// not empty), then the environment, then flags that were set on fs. Flags
// named like keys ("server.addr") map directly; aliases maps short flag
// names ("addr") to keys.
func Load(path string, fs *pflag.FlagSet, aliases map[string]string) (Config, error) {
	k := koanf.New(".")
	if err := k.Load(confmap.Provider(Defaults(), "."), nil); err != nil {
		return Config{}, fmt.Errorf("config: defaults: %w", err)
	}
	if path != "" {
		if err := k.Load(file.Provider(path), yaml.Parser()); err != nil {
			return Config{}, fmt.Errorf("config: %s: %w", path, err)
		}
	}
	defaults := Defaults()
	envProvider := env.ProviderWithValue("MESP_", ".", func(key, value string) (string, any) {
		key = strings.ToLower(strings.TrimPrefix(key, "MESP_"))
		key = strings.ReplaceAll(key, "__", ".")
		def, ok := defaults[key]
		if !ok && !strings.Contains(key, ".") {
			// MESP_CACHE, MESP_PYTHON, MESP_BIN...: the tools' own variables,
			// not settings. A variable with a level (MESP_SERVER__X) is a
			// setting, and an unknown one is refused below.
			return "", nil
		}
		if reflect.ValueOf(def).Kind() == reflect.Slice {
			// a list setting: comma-separated in the environment
			var items []string
			for _, v := range strings.Split(value, ",") {
				if v = strings.TrimSpace(v); v != "" {
					items = append(items, v)
				}
			}
			return key, items
		}
		return key, value
	})
	if err := k.Load(envProvider, nil); err != nil {
		return Config{}, fmt.Errorf("config: environment: %w", err)
	}
	if fs != nil {
		known := k.All()
		p := posflag.ProviderWithFlag(fs, ".", k, func(f *pflag.Flag) (string, any) {
			key := f.Name
			if a, ok := aliases[key]; ok {
				key = a
			}
			if _, ok := known[key]; !ok {
				return "", nil // a subcommand flag that is not a setting
			}
			return key, posflag.FlagVal(fs, f)
		})
		if err := k.Load(p, nil); err != nil {
			return Config{}, fmt.Errorf("config: flags: %w", err)
		}
	}
	for _, key := range k.Keys() {
		if _, ok := defaults[key]; !ok {
			return Config{}, fmt.Errorf("config: unknown setting %q (a typo? known: %s)", key, strings.Join(knownKeys(), ", "))
		}
	}
	var c Config
	if err := k.UnmarshalWithConf("", &c, koanf.UnmarshalConf{Tag: "koanf"}); err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return c, c.Validate()
}

func knownKeys() []string {
	keys := make([]string, 0, len(Defaults()))
	for k := range Defaults() {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Validate checks values that no type can.
func (c Config) Validate() error {
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("config: log.level %q: want debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return fmt.Errorf("config: log.format %q: want text or json", c.Log.Format)
	}
	if c.Server.MaxInflightFunctions < 0 {
		return fmt.Errorf("config: server.max_inflight_functions must not be negative")
	}
	if err := c.Server.TLS.Files().Check("config: server.tls"); err != nil {
		return err
	}
	if err := c.Scaler.TLS.Files().Check("config: scaler.tls"); err != nil {
		return err
	}
	if c.History.Snapshot != "" && c.History.SnapshotEvery < time.Second {
		return fmt.Errorf("config: history.snapshot_every must be at least 1s")
	}
	if c.Scaler.MaxStreams < 1 {
		return fmt.Errorf("config: scaler.max_streams must be positive")
	}
	if c.Prometheus.Timeout <= 0 || c.Prometheus.Concurrency < 1 || c.Prometheus.MaxLag <= 0 {
		return fmt.Errorf("config: prometheus.timeout, prometheus.concurrency and prometheus.max_lag must be positive")
	}
	if c.ORT.MaxRowsPerRun < 0 {
		return fmt.Errorf("config: ort.max_rows_per_run must not be negative (0: no split)")
	}
	if c.Server.GoMemoryLimitBytes < 0 {
		return fmt.Errorf("config: server.go_memory_limit_bytes must not be negative (0: Go's own)")
	}
	if c.Server.MaxInflightBodyBytes < 0 || c.Server.MaxConnections < 0 {
		return fmt.Errorf("config: server.max_inflight_body_bytes and server.max_connections must not be negative")
	}
	switch c.ORT.Provider {
	case "cpu", "cuda":
	default:
		return fmt.Errorf("config: ort.provider %q: want cpu or cuda", c.ORT.Provider)
	}
	if c.History.MaxFunctions < 1 {
		return fmt.Errorf("config: history.max_functions must be positive")
	}
	if c.Prometheus.URL != "" {
		if c.Prometheus.Refresh < time.Second {
			return fmt.Errorf("config: prometheus.refresh %v: want at least 1s", c.Prometheus.Refresh)
		}
		if strings.Contains(c.Prometheus.Query, "$name") {
			if len(c.Prometheus.Functions) == 0 {
				return fmt.Errorf("config: prometheus.query has $name: want prometheus.functions (or a query grouped by prometheus.label, without $name)")
			}
		} else {
			if c.Prometheus.Label == "" || c.Prometheus.Slice < time.Minute || c.Prometheus.MaxBodyBytes < 1<<10 {
				return fmt.Errorf("config: a grouped prometheus.query wants prometheus.label, a prometheus.slice of at least 1m and prometheus.max_body_bytes of at least 1 KiB")
			}
			if _, err := regexp.Compile(c.Prometheus.Match); err != nil {
				return fmt.Errorf("config: prometheus.match: %w", err)
			}
		}
	}
	if c.Shard.Replicas < 1 || c.Shard.Index < -1 || c.Shard.Index >= c.Shard.Replicas {
		return fmt.Errorf("config: shard.index %d of shard.replicas %d: want replicas >= 1 and an index in 0..replicas-1, or -1 (the host name's ordinal)", c.Shard.Index, c.Shard.Replicas)
	}
	if c.Decide.Deadline < 0 || c.Decide.Deadline >= time.Minute || c.Decide.Batch < 1 || c.Decide.MaxAge < time.Minute || c.Decide.MaxAge > time.Hour {
		return fmt.Errorf("config: decide.deadline %v, decide.batch %d, decide.max_age %v: want a deadline within the minute, a positive batch and a max age of 1m to 1h",
			c.Decide.Deadline, c.Decide.Batch, c.Decide.MaxAge)
	}
	if c.Decide.Workers < 0 || c.Decide.Nice < 0 || c.Decide.Nice > 19 {
		return fmt.Errorf("config: decide.workers %d, decide.nice %d: want 0 (one per core) or more workers and a nice value in 0..19", c.Decide.Workers, c.Decide.Nice)
	}
	for _, q := range c.Decide.Quantiles {
		if !(q >= 0.5 && q < 1) {
			return fmt.Errorf("config: decide.quantiles %v: want levels in [0.5, 1)", c.Decide.Quantiles)
		}
	}
	if c.Scaler.StreamEvery < time.Second {
		return fmt.Errorf("config: scaler.stream_every %v: want at least 1s", c.Scaler.StreamEvery)
	}
	if c.ORT.IntraOpThreads < 0 || c.Server.MaxBatch < 1 || c.ORT.MaxBatch < 1 {
		return fmt.Errorf("config: ort.intra_op_threads, server.max_batch and ort.max_batch must be positive")
	}
	return nil
}

// CacheDir is where set-up scripts keep downloads, outside the clone.
func CacheDir() string {
	if d := os.Getenv("MESP_CACHE"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "mesp")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "mesp")
}

// ORTLibrary is the library path to use: the configured one, else the
// cached CPU build.
func (o ORT) ORTLibrary() string {
	if o.Library != "" {
		return o.Library
	}
	return filepath.Join(CacheDir(), "onnxruntime-"+ORTVersion, "libonnxruntime.so.1")
}
