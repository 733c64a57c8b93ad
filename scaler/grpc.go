package scaler

import (
	"context"
	"crypto/tls"
	"sync/atomic"
	"time"

	"github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
)

// Limits bound what clients can make the gRPC server hold.
type Limits struct {
	// MaxStreams bounds the StreamIsActive streams open at once over all
	// connections (0: 1000); beyond it a stream is refused with
	// ResourceExhausted. Each stream holds a goroutine and a timer: 20,000
	// took 925 MB and made HTTP latency 300 times worse.
	MaxStreams int
	// TLS, when set, serves gRPC over TLS (mutual when it requires client
	// certificates).
	TLS *tls.Config
}

// NewGRPC is a gRPC server with the scaler, the standard health service
// (SERVING while it runs, for Kubernetes' gRPC probes) and a
// mesp_scaler_requests_total{method, code} counter in reg. Idle
// connections close after five minutes, and clients may not ping more
// than every 20 s.
func NewGRPC(s *Server, reg prometheus.Registerer, lim Limits) *grpc.Server {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mesp_scaler_requests_total", Help: "KEDA external scaler calls by method and gRPC status code."}, []string{"method", "code"})
	streams := prometheus.NewGauge(prometheus.GaugeOpts{Name: "mesp_scaler_streams", Help: "StreamIsActive streams open."})
	reg.MustRegister(requests, streams)
	count := func(method string, err error) { requests.WithLabelValues(method, status.Code(err).String()).Inc() }
	maxStreams := int64(lim.MaxStreams)
	if maxStreams <= 0 {
		maxStreams = 1000
	}
	var open atomic.Int64
	opts := []grpc.ServerOption{
		// KEDA shares one connection among all its ScaledObjects, streams
		// included: a connection must carry every stream allowed and room
		// for the unary calls beside them.
		grpc.MaxConcurrentStreams(uint32(maxStreams) + 100),
		grpc.MaxRecvMsgSize(1 << 20), // a ScaledObjectRef is a few hundred bytes
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: 5 * time.Minute, Time: 2 * time.Minute, Timeout: 20 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 20 * time.Second, PermitWithoutStream: true}),
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			resp, err := h(ctx, req)
			count(info.FullMethod, err)
			return resp, err
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if now := open.Add(1); now > maxStreams {
				open.Add(-1)
				err := status.Errorf(codes.ResourceExhausted, "%d streams open, at most %d (scaler.max_streams): retry shortly", now-1, maxStreams)
				count(info.FullMethod, err)
				return err
			}
			streams.Inc()
			defer func() { open.Add(-1); streams.Dec() }()
			err := h(srv, ss)
			count(info.FullMethod, err)
			return err
		}),
	}
	if lim.TLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(lim.TLS)))
	}
	g := grpc.NewServer(opts...)
	externalscaler.RegisterExternalScalerServer(g, s)
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus(externalscaler.ExternalScaler_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(g, hs)
	return g
}
