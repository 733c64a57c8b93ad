package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/net/netutil"

	"github.com/mesp-project/mesp/config"
	"github.com/mesp-project/mesp/decide"
	"github.com/mesp-project/mesp/forecast"
	"github.com/mesp-project/mesp/history"
	"github.com/mesp-project/mesp/manifest"
	"github.com/mesp-project/mesp/onnx"
	"github.com/mesp-project/mesp/oodlog"
	"github.com/mesp-project/mesp/router"
	"github.com/mesp-project/mesp/server"
	"github.com/mesp-project/mesp/shard"
)

func init() {
	register("serve", "serve forecasts over HTTP from a models folder", runServe)
}

// serveAliases are the short flags of settings used on the command line.
var serveAliases = map[string]string{
	"addr": "server.addr", "ort-library": "ort.library", "provider": "ort.provider",
	"admin-token": "server.admin_token", "threads": "ort.intra_op_threads", "ood-dir": "router.ood_dir",
	"grpc-addr": "scaler.grpc_addr",
}

func runServe(ctx context.Context, args []string) error {
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	cfgPath := fs.String("config", "", "YAML config file")
	fs.String("models", "", "models folder (models)")
	fs.String("addr", "", "listen address (server.addr)")
	fs.String("ort-library", "", "libonnxruntime.so path (ort.library)")
	fs.String("provider", "", "cpu or cuda (ort.provider)")
	fs.String("admin-token", "", "bearer token for /v1/admin (server.admin_token)")
	fs.Int("threads", 0, "ONNX Runtime intra-op threads per session (ort.intra_op_threads)")
	fs.String("ood-dir", "", "folder for the out-of-distribution log (router.ood_dir)")
	fs.String("grpc-addr", "", "serve KEDA's external scaler protocol here (scaler.grpc_addr)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.Load(*cfgPath, fs, serveAliases)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log)
	if limit, set := applyGoMemoryLimit(cfg.Server); set {
		log.Info("go memory limit", "bytes", limit)
	}
	ortVersion, err := onnx.Init(cfg.ORT.ORTLibrary())
	if err != nil {
		return err
	}
	log.Info("onnxruntime ready", "mesp", version(), "version", ortVersion, "provider", cfg.ORT.Provider)
	// each model's runs, rows and seconds in ONNX Runtime, on /metrics
	runs := onnx.NewRunStats()
	fc := servedForecaster(cfg, runs)
	if cfg.Router.OODDir != "" {
		ood, err := oodlog.Open(cfg.Router.OODDir, cfg.Router.OODMaxBytes, cfg.Router.OODKeep)
		if err != nil {
			return err
		}
		// the table decides every held function each minute: its patterns
		// are logged once a day per function (a day is what a pattern is)
		fromTable := &oodlog.Recent{Every: 24 * time.Hour}
		fc.OnRoute = func(ctx context.Context, id string, counts []float64, rt router.Route, _ string) {
			if !rt.OOD || decide.FromTable(ctx) && !fromTable.Due(id, time.Now()) {
				return
			}
			if err := ood.Append(oodlog.Record{Function: id, Time: time.Now().UTC(), Cluster: rt.Cluster, Distance: rt.Distance, Counts: counts, Source: server.Source(ctx)}); err != nil {
				log.Error("recording an out-of-distribution pattern", "err", err)
			}
		}
	}
	// Take the port first: a port in use is reported before minutes of
	// model loading, not after.
	ln, err := net.Listen("tcp", cfg.Server.Addr)
	if err != nil {
		return err
	}
	if cfg.Server.MaxConnections > 0 {
		ln = netutil.LimitListener(ln, cfg.Server.MaxConnections)
	}
	host, _ := os.Hostname()
	index, err := cfg.Shard.ShardIndex(host)
	if err != nil {
		ln.Close()
		return err
	}
	sh := shard.Shard{Index: index, Replicas: cfg.Shard.Replicas}
	if err := sh.Validate(); err != nil {
		ln.Close()
		return err
	}
	store := history.New(manifest.PInvokeInputLen, cfg.History.MaxFunctions).WithClock(time.Now)
	persisted := loadHistory(ctx, cfg.History, store, log)
	var serverTLS *tls.Config
	if files := cfg.Server.TLS.Files(); files.Enabled() {
		if serverTLS, err = files.ServerConfig(func(err error) { log.Error("server certificate", "err", err) }); err != nil {
			ln.Close()
			return err
		}
	}
	var loop *decide.Loop
	var table server.DecisionTable
	if cfg.Decide.Enabled {
		loop = &decide.Loop{Predictor: fc, History: store, Batch: cfg.Decide.Batch, Workers: cfg.Decide.Workers, Nice: cfg.Decide.Nice, Deadline: cfg.Decide.Deadline,
			MaxAge: int(cfg.Decide.MaxAge / time.Minute), Quantiles: cfg.Decide.Quantiles, Log: log}
		table = loop
	}
	srv := server.New(fc, server.Options{AdminToken: cfg.Server.AdminToken, WriteToken: cfg.Server.WriteToken, TLS: serverTLS, MaxBatch: cfg.Server.MaxBatch,
		MaxBodyBytes: cfg.Server.MaxBodyBytes, MaxInflightFunctions: cfg.Server.MaxInflightFunctions, MaxInflightBodyBytes: cfg.Server.MaxInflightBodyBytes, ReadTimeout: cfg.Server.ReadTimeout, WriteTimeout: cfg.Server.WriteTimeout,
		ShutdownTimeout: cfg.Server.ShutdownTimeout, Logger: log, History: store, Decisions: table, Shard: sh})
	fc.OnRoute = srv.RouteHook(fc.OnRoute)
	if err := srv.Registerer().Register(runs); err != nil {
		ln.Close()
		return fmt.Errorf("model run metrics: %w", err)
	}
	if st := srv.Reload("start"); !st.OK {
		ln.Close()
		return fmt.Errorf("loading %s: %s", cfg.Models, st.Error)
	}
	fresh, err := startReader(ctx, cfg, store, srv, sh, log)
	if err != nil {
		ln.Close()
		return err
	}
	if loop != nil {
		// a function the reader no longer finds in Prometheus is not decided
		loop.Fresh = fresh
		if err := loop.Register(srv.Registerer()); err != nil {
			ln.Close()
			return err
		}
		go loop.Run(ctx)
	}
	if err := startScaler(ctx, cfg, fc, store, srv, loop, fresh, sh, log); err != nil {
		ln.Close()
		return err
	}
	if cfg.Server.Watch {
		if err := srv.Watch(ctx, cfg.Models, 500*time.Millisecond); err != nil {
			return err
		}
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				srv.Reload("SIGHUP")
			}
		}
	}()
	scheme := "http"
	if serverTLS != nil {
		scheme = "https"
	}
	log.Info("serving", "addr", ln.Addr().String(), "models", cfg.Models, "tls", serverTLS != nil)
	if cfg.Log.Format != "json" {
		// Tests and scripts read this line to find a port chosen by the OS
		// (with JSON logs, the "serving" record carries the address).
		fmt.Fprintf(os.Stderr, "mesp: listening on %s://%s\n", scheme, ln.Addr())
	}
	err = srv.Serve(ctx, ln)
	<-persisted // the last snapshot, after the last push was answered
	return err
}

// loadHistory loads the snapshot of pushed history, if one is configured,
// and saves it every history.snapshot_every and at the stop; the returned
// channel closes after the last save. A snapshot that does not load is
// set aside (its name plus ".bad-<time>") and the server starts empty.
func loadHistory(ctx context.Context, c config.History, store *history.Store, log *slog.Logger) <-chan struct{} {
	done := make(chan struct{})
	if c.Snapshot == "" {
		close(done)
		return done
	}
	n, err := store.Load(c.Snapshot)
	switch {
	case errors.Is(err, history.ErrSnapshot):
		aside := fmt.Sprintf("%s.bad-%d", c.Snapshot, time.Now().Unix())
		if rerr := os.Rename(c.Snapshot, aside); rerr != nil {
			log.Error("history snapshot refused, and could not be set aside", "err", err, "rename", rerr)
		} else {
			log.Error("history snapshot refused: starting without pushed history", "err", err, "kept_as", aside)
		}
	case err != nil:
		log.Error("history snapshot not read: starting without pushed history", "err", err)
	default:
		log.Info("history snapshot loaded", "functions", n, "file", c.Snapshot)
	}
	go store.Persist(ctx, c.Snapshot, c.SnapshotEvery, func(err error) { log.Error("saving the history snapshot", "err", err) }, done)
	return done
}

func newLogger(c config.Log) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.Level)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		// Durations as "1.5s", not nanoseconds.
		opts.ReplaceAttr = func(_ []string, a slog.Attr) slog.Attr {
			if a.Value.Kind() == slog.KindDuration {
				a.Value = slog.StringValue(a.Value.Duration().String())
			}
			return a
		}
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

// applyGoMemoryLimit sets the Go runtime's soft memory limit from
// server.go_memory_limit_bytes; set is false where the setting is 0 and
// Go's own limit stays (GOMEMLIMIT, or none).
func applyGoMemoryLimit(c config.Server) (limit int64, set bool) {
	if c.GoMemoryLimitBytes <= 0 {
		return debug.SetMemoryLimit(-1), false
	}
	debug.SetMemoryLimit(c.GoMemoryLimitBytes)
	return c.GoMemoryLimitBytes, true
}

// ortOptions and ortBatching are the ONNX Runtime settings of every
// subcommand that runs models for answers (serve, eval, loadgen --raw).
func ortOptions(c config.ORT) onnx.Options {
	return onnx.Options{IntraOpThreads: c.IntraOpThreads, Provider: c.Provider, CUDADevice: c.CUDADevice, MaxRowsPerRun: c.MaxRowsPerRun}
}

func ortBatching(c config.ORT) forecast.Batching {
	return forecast.Batching{Wait: c.BatchWait, MaxRows: c.MaxBatch}
}
