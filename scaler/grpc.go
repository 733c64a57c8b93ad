package scaler

import (
	"context"

	"github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// NewGRPC is a gRPC server with the scaler, the standard health service
// (SERVING while it runs, for Kubernetes' gRPC probes) and a
// mesp_scaler_requests_total{method, code} counter in reg.
func NewGRPC(s *Server, reg prometheus.Registerer) *grpc.Server {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mesp_scaler_requests_total", Help: "KEDA external scaler calls by method and gRPC status code."}, []string{"method", "code"})
	reg.MustRegister(requests)
	count := func(method string, err error) { requests.WithLabelValues(method, status.Code(err).String()).Inc() }
	g := grpc.NewServer(
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			resp, err := h(ctx, req)
			count(info.FullMethod, err)
			return resp, err
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			err := h(srv, ss)
			count(info.FullMethod, err)
			return err
		}))
	externalscaler.RegisterExternalScalerServer(g, s)
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus(externalscaler.ExternalScaler_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(g, hs)
	return g
}
