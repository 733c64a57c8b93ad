package main

import (
	"context"
	"fmt"
	"github.com/mesp-project/mesp/decide"
	"log/slog"
	"net"
	"regexp"
	"slices"
	"strings"
	"time"

	"golang.org/x/net/netutil"

	"github.com/mesp-project/mesp/config"
	"github.com/mesp-project/mesp/forecast"
	"github.com/mesp-project/mesp/history"
	"github.com/mesp-project/mesp/promread"
	"github.com/mesp-project/mesp/scaler"
	"github.com/mesp-project/mesp/server"
	"github.com/mesp-project/mesp/shard"
)

// startReader starts the Prometheus reader when prometheus.url is set (it
// stops with ctx) and returns its freshness check for the scaler and the
// decision loop (nil without a reader: every history is pushed, so
// current).
func startReader(ctx context.Context, cfg config.Config, store *history.Store, srv *server.Server, sh shard.Shard, log *slog.Logger) (func(string) error, error) {
	if cfg.Prometheus.URL == "" {
		return nil, nil
	}
	// a replica reads only its own functions: a grouped query checks
	// each one it discovers (Owns), a per-function one reads its share
	// of the list
	functions := cfg.Prometheus.Functions
	if strings.Contains(cfg.Prometheus.Query, promread.NamePlaceholder) {
		functions = slices.DeleteFunc(slices.Clone(functions), func(f string) bool { return !sh.Owns(f) })
	}
	r := &promread.Reader{URL: cfg.Prometheus.URL, Query: cfg.Prometheus.Query, Functions: functions, Owns: sh.Owns,
		Label: cfg.Prometheus.Label, Slice: int(cfg.Prometheus.Slice / time.Minute), MaxBody: cfg.Prometheus.MaxBodyBytes,
		Store: store, Log: log, Timeout: cfg.Prometheus.Timeout, Concurrency: cfg.Prometheus.Concurrency, MaxLag: cfg.Prometheus.MaxLag}
	if cfg.Prometheus.Match != "" {
		r.Match = regexp.MustCompile(cfg.Prometheus.Match) // checked by config.Validate
	}
	if err := r.Register(srv.Registerer()); err != nil {
		return nil, err
	}
	go r.Run(ctx, cfg.Prometheus.Refresh)
	return r.Fresh, nil
}

// startScaler serves KEDA's external scaler over gRPC when
// scaler.grpc_addr is set (it stops with ctx); loop is the decision
// table's (nil: none), fresh the reader's freshness check (nil: none).
func startScaler(ctx context.Context, cfg config.Config, fc *forecast.Forecaster, store *history.Store, srv *server.Server,
	loop *decide.Loop, fresh func(string) error, sh shard.Shard, log *slog.Logger) error {
	if cfg.Scaler.GRPCAddr == "" {
		return nil
	}
	lim := scaler.Limits{MaxStreams: cfg.Scaler.MaxStreams}
	if files := cfg.Scaler.TLS.Files(); files.Enabled() {
		tc, err := files.ServerConfig(func(err error) { log.Error("scaler certificate", "err", err) })
		if err != nil {
			return fmt.Errorf("scaler: %w", err)
		}
		lim.TLS = tc
	}
	ln, err := net.Listen("tcp", cfg.Scaler.GRPCAddr)
	if err != nil {
		return fmt.Errorf("scaler: %w", err)
	}
	if cfg.Server.MaxConnections > 0 {
		ln = netutil.LimitListener(ln, cfg.Server.MaxConnections)
	}
	sc := &scaler.Server{Predictor: fc, History: store, StreamEvery: cfg.Scaler.StreamEvery, Fresh: fresh, Admit: srv.Admit, Owns: sh.Check,
		DefaultThreshold: func() float64 {
			set, _ := fc.Catalog()
			return set.PrewarmThreshold()
		}}
	if loop != nil {
		sc.Decisions, sc.Pending = loop.Lookup, loop.FirstPending
	}
	g := scaler.NewGRPC(sc, srv.Registerer(), lim)
	go func() {
		<-ctx.Done()
		stopped := make(chan struct{})
		go func() { g.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(cfg.Server.ShutdownTimeout):
			g.Stop() // open StreamIsActive streams end only when KEDA closes them
		}
	}()
	go func() {
		if err := g.Serve(ln); err != nil {
			log.Error("scaler stopped", "err", err)
		}
	}()
	log.Info("KEDA external scaler serving", "grpc_addr", ln.Addr().String(), "tls", lim.TLS != nil, "mutual_tls", cfg.Scaler.TLS.ClientCAFile != "")
	return nil
}
