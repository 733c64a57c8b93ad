// Package scaler is MESP as a KEDA external scaler (KEDA's
// externalscaler.proto, served over gRPC with KEDA's own generated code):
// KEDA names a function in a ScaledObject's metadata, MESP reads its last
// day of per-minute counts from the history store and answers from the
// experts. IsActive is the pre-warm decision for the current minute
// (p_invoke >= threshold, as POST /v1/prewarm decides); GetMetrics is the
// demand coming, the largest per-minute count forecast (at the trigger's
// quantile) over the next demandMinutes minutes, with floor lastMinute at
// least the last minute's count, which KEDA divides by the target to size
// the workload.
package scaler

import (
	"context"
	"errors"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/mesp-project/mesp/decide"
	"github.com/mesp-project/mesp/forecast"
	"github.com/mesp-project/mesp/funcid"
	"github.com/mesp-project/mesp/history"
	"github.com/mesp-project/mesp/trace"
)

// Predictor answers p_invoke and expected counts for patterns, routed as
// served (forecast.Forecaster).
type Predictor interface {
	Predict(ctx context.Context, reqs []forecast.Request, mode forecast.Mode, outs forecast.Outputs) ([]forecast.Result, error)
}

// Metadata keys a ScaledObject's trigger may set.
const (
	KeyFunction      = "function"      // required: the function's name in the history store
	KeyThreshold     = "threshold"     // p_invoke at or above it: active (default: the manifest's)
	KeyDemandMinutes = "demandMinutes" // minutes ahead whose largest forecast is the demand (default 10)
	KeyTarget        = "target"        // invocations per minute one replica serves (default 60)
	KeyQuantile      = "quantile"      // the demand's quantile of each minute's count, or "mean" (default 0.9)
	KeyFloor         = "floor"         // "lastMinute": the demand is at least the last minute's observed count (default "none")
)

// Values of KeyFloor.
const (
	FloorNone = "none"
	// FloorLastMinute floors GetMetrics' demand at the last complete
	// minute's observed count: a burst no history announces is served
	// from its second minute on, as reactive scaling serves it, while the
	// forecast sizes for what is coming (`mesp eval`'s mesp_floored
	// curve, beside EVALUATION.md section 4's policies).
	FloorLastMinute = "lastMinute"
)

// Defaults for the optional metadata.
const (
	DefaultDemandMinutes = 10
	DefaultTarget        = 60.0
	// DefaultQuantile is the demand's default quantile: capacity is sized
	// for a high quantile of demand, not its mean (EVALUATION.md section
	// 4). A set without quantile trees for it answers the expected count.
	DefaultQuantile = 0.9
)

// Mean is a trigger's quantile "mean": the demand is the expected count.
const Mean = 0.0

// Server implements KEDA's ExternalScaler service.
type Server struct {
	externalscaler.UnimplementedExternalScalerServer
	Predictor Predictor
	History   *history.Store
	// DefaultThreshold is the models' default pre-warm threshold (0: none).
	DefaultThreshold func() float64
	// Now is the clock (time.Now when nil): the current minute is the one
	// decided, from the minutes before it.
	Now func() time.Time
	// StreamEvery is how often StreamIsActive re-decides (a minute when 0).
	StreamEvery time.Duration
	// Fresh, when set, says whether a function's history is current
	// (promread.Reader.Fresh): a function whose recent minutes were never
	// read is answered Unavailable, so that KEDA keeps its replicas or
	// applies the ScaledObject's fallback, instead of scaling down on
	// minutes it takes for silence.
	Fresh func(function string) error
	// Decisions, when set, is the table computed once per minute
	// (decide.Loop.Lookup): a function's p_invoke and expected counts from
	// minute on (from the previous minute's table until the minute's own
	// is decided), ok false when the table is too old or lacks the
	// function (then the call computes, as without a table).
	Decisions func(function string, minute int64) (decide.Entry, bool)
	// Pending, when set, says the first table is being decided
	// (decide.Loop.FirstPending): a call the table cannot answer is then
	// refused ResourceExhausted, the overload answer Admit gives too (KEDA
	// keeps its replicas, or applies the ScaledObject's fallback, and asks
	// again) instead of computing on the cores the table needs.
	Pending func() bool
	// Owns, when set, says whether this replica owns a function (shard.Shard.Check):
	// a call about another replica's function is answered FailedPrecondition,
	// naming it.
	Owns func(function string) error
	// Admit, when set, reserves n functions of the process's in-flight
	// budget (server.Server.Admit), so that KEDA's calls and HTTP's share
	// one bound; refused, a call is answered ResourceExhausted.
	Admit func(n int) (release func(), err error)
}

// trigger is a ScaledObject's parsed metadata.
type trigger struct {
	function      string
	threshold     float64
	demandMinutes int
	target        float64
	// quantile is the demand's quantile (Mean: the expected count);
	// explicit says the metadata set it (the default falls back to the
	// expected count where the set has no quantile trees for it).
	quantile float64
	explicit bool
	// floorLastMinute: the demand is at least the last minute's count
	// (FloorLastMinute).
	floorLastMinute bool
}

func (s *Server) parse(ref *externalscaler.ScaledObjectRef) (trigger, error) {
	if ref == nil {
		return trigger{}, status.Error(codes.InvalidArgument, "no ScaledObjectRef")
	}
	md := ref.GetScalerMetadata()
	t := trigger{function: md[KeyFunction], demandMinutes: DefaultDemandMinutes, target: DefaultTarget, quantile: DefaultQuantile}
	if t.function == "" {
		return t, status.Errorf(codes.InvalidArgument, "ScaledObject %s/%s: metadata %q (the function's name) is required", ref.GetNamespace(), ref.GetName(), KeyFunction)
	}
	if err := funcid.Validate(t.function); err != nil {
		return t, status.Errorf(codes.InvalidArgument, "ScaledObject %s/%s: metadata %q: %v", funcid.Short(ref.GetNamespace()), funcid.Short(ref.GetName()), KeyFunction, err)
	}
	if v, ok := md[KeyThreshold]; ok {
		th, err := strconv.ParseFloat(v, 64)
		if err != nil || !(th >= 0 && th <= 1) {
			return t, status.Errorf(codes.InvalidArgument, "metadata %s %q: want a probability in [0, 1]", KeyThreshold, v)
		}
		t.threshold = th
	} else {
		if s.DefaultThreshold != nil {
			t.threshold = s.DefaultThreshold()
		}
		if !(t.threshold > 0) {
			return t, status.Errorf(codes.FailedPrecondition, "the models in service have no default pre-warm threshold: set metadata %s", KeyThreshold)
		}
	}
	if v, ok := md[KeyDemandMinutes]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 60 {
			return t, status.Errorf(codes.InvalidArgument, "metadata %s %q: want 1..60 minutes", KeyDemandMinutes, v)
		}
		t.demandMinutes = n
	}
	if v, ok := md[KeyTarget]; ok {
		x, err := strconv.ParseFloat(v, 64)
		// Beyond trace.MaxCount no minute's demand could reach one replica,
		// and KEDA's int64 targetSize would overflow near 9.2e18.
		if err != nil || !(x > 0) || x > trace.MaxCount {
			return t, status.Errorf(codes.InvalidArgument, "metadata %s %q: want invocations per minute per replica, > 0 and at most %g", KeyTarget, v, trace.MaxCount)
		}
		t.target = x
	}
	if v, ok := md[KeyQuantile]; ok {
		t.explicit = true
		if v == "mean" {
			t.quantile = Mean
		} else if q, err := strconv.ParseFloat(v, 64); err != nil || !(q >= 0.5 && q < 1) {
			return t, status.Errorf(codes.InvalidArgument, "metadata %s %q: want \"mean\" or a quantile in [0.5, 1) within the levels the models serve", KeyQuantile, v)
		} else {
			t.quantile = q
		}
	}
	switch v := md[KeyFloor]; v {
	case "", FloorNone:
	case FloorLastMinute:
		t.floorLastMinute = true
	default:
		return t, status.Errorf(codes.InvalidArgument, "metadata %s %q: want %q or %q", KeyFloor, v, FloorNone, FloorLastMinute)
	}
	return t, nil
}

// decision is one function's answer for the current minute.
type decision struct {
	active bool
	// demand is the largest expected per-minute count over the trigger's
	// demand minutes.
	demand float64
}

// decide is the trigger's decision for the current minute (decideAt),
// its demand floored as the trigger asks: with FloorLastMinute, at least
// the history's count of the minute before.
func (s *Server) decide(ctx context.Context, t trigger) (decision, error) {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	minute := now().Unix() / 60
	d, err := s.decideAt(ctx, t, minute)
	if err != nil || !t.floorLastMinute {
		return d, err
	}
	last, err := s.History.At(t.function, minute-1)
	if err != nil {
		return decision{}, historyStatus(err)
	}
	d.demand = max(d.demand, last)
	return d, nil
}

// decideAt answers from the minute's decision table when it holds the
// function, else reads the function's history up to minute and asks the
// models: either way the same p_invoke and forecast POST /v1/prewarm
// gives for those counts.
func (s *Server) decideAt(ctx context.Context, t trigger, minute int64) (decision, error) {
	if s.Owns != nil {
		if err := s.Owns(t.function); err != nil {
			return decision{}, status.Error(codes.FailedPrecondition, err.Error())
		}
	}
	if s.Fresh != nil {
		if err := s.Fresh(t.function); err != nil {
			return decision{}, status.Error(codes.Unavailable, err.Error())
		}
	}
	if s.Decisions != nil {
		// a table that does not keep the trigger's quantile: compute
		if e, ok := s.Decisions(t.function, minute); ok && t.keptIn(e.Quantiles) {
			return answer(t, e.PInvoke, e.Forecast, e.Quantiles)
		}
	}
	if s.Pending != nil && s.Pending() {
		return decision{}, status.Errorf(codes.ResourceExhausted, "function %s: the first minute's decision table is being computed; ask again shortly", funcid.Short(t.function))
	}
	if s.Admit != nil {
		release, err := s.Admit(1)
		if err != nil {
			return decision{}, status.Error(codes.ResourceExhausted, err.Error())
		}
		defer release()
	}
	counts, err := s.History.Window(t.function, minute)
	if err != nil {
		return decision{}, historyStatus(err)
	}
	// the quantile levels up to the trigger's (Mean, 0: none)
	res, err := decide.PredictUpTo(ctx, s.Predictor, []forecast.Request{{ID: t.function, Counts: counts}}, forecast.Counts|forecast.PInvoke, t.quantile)
	switch {
	case errors.Is(err, forecast.ErrInvalid):
		return decision{}, status.Errorf(codes.FailedPrecondition, "function %q: %d minutes of history: %v", t.function, len(counts), err)
	case errors.Is(err, forecast.ErrNotReady):
		return decision{}, status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, forecast.ErrNoPInvoke):
		return decision{}, status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return decision{}, status.FromContextError(err).Err()
	case err != nil:
		return decision{}, status.Error(codes.Internal, err.Error())
	}
	return answer(t, res[0].PInvoke, res[0].Forecast, res[0].QuantileSeries())
}

// historyStatus is a history read's error as KEDA is told it: a function
// the store never saw is NotFound, with how to feed it.
func historyStatus(err error) error {
	if errors.Is(err, history.ErrUnknown) {
		return status.Errorf(codes.NotFound, "%v: push it to POST /v1/observe or configure it for the Prometheus reader", err)
	}
	return status.Error(codes.Internal, err.Error())
}

// keptIn says whether qs hold the trigger's demand: its own level (one
// interpolated between two kept levels would not be the served
// interpolation when the set serves a level between them).
func (t trigger) keptIn(qs []forecast.QuantileCounts) bool {
	return t.quantile == Mean || slices.ContainsFunc(qs, func(c forecast.QuantileCounts) bool { return c.Q == t.quantile })
}

// answer is the trigger's decision from a function's p_invoke, expected
// counts and count quantiles for the minutes ahead: the demand is the
// largest of the trigger's quantile (or expected count) over its demand
// minutes.
func answer(t trigger, pInvoke, fc []float32, quantiles []forecast.QuantileCounts) (decision, error) {
	if t.quantile != Mean {
		q, ok := forecast.QuantileAt(quantiles, t.quantile)
		switch {
		case ok:
			fc = q
		case t.explicit:
			served := make([]string, len(quantiles))
			for k, c := range quantiles {
				served[k] = strconv.FormatFloat(c.Q, 'g', -1, 64)
			}
			return decision{}, status.Errorf(codes.FailedPrecondition, "metadata %s %v: the models in service do not answer it (their quantiles: %v, and any level between two of them; \"mean\" is the expected count)", KeyQuantile, t.quantile, served)
		}
	}
	// a table a minute old forecasts one minute fewer ahead
	d := decision{active: float64(pInvoke[0]) >= t.threshold, demand: float64(slices.Max(fc[:min(t.demandMinutes, len(fc))]))}
	// KEDA must never get +Inf or an overflowed metricValue: a model that
	// answers a non-finite number is a fault to report, not a demand.
	if p := float64(pInvoke[0]); math.IsNaN(p) || math.IsNaN(d.demand) || math.IsInf(d.demand, 0) || d.demand < 0 || d.demand > math.MaxInt64/2 {
		return decision{}, status.Errorf(codes.Internal, "function %s: the models answered p_invoke %v and demand %v", funcid.Short(t.function), p, d.demand)
	}
	return d, nil
}

// IsActive is KEDA's activation question: warm for the current minute?
func (s *Server) IsActive(ctx context.Context, ref *externalscaler.ScaledObjectRef) (*externalscaler.IsActiveResponse, error) {
	t, err := s.parse(ref)
	if err != nil {
		return nil, err
	}
	d, err := s.decide(ctx, t)
	if err != nil {
		return nil, err
	}
	return &externalscaler.IsActiveResponse{Result: d.active}, nil
}

// StreamIsActive sends the decision at once and then every StreamEvery,
// until KEDA closes the stream.
func (s *Server) StreamIsActive(ref *externalscaler.ScaledObjectRef, stream externalscaler.ExternalScaler_StreamIsActiveServer) error {
	t, err := s.parse(ref)
	if err != nil {
		return err
	}
	every := s.StreamEvery
	if every <= 0 {
		every = time.Minute
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		d, err := s.decide(stream.Context(), t)
		if err != nil {
			return err
		}
		if err := stream.Send(&externalscaler.IsActiveResponse{Result: d.active}); err != nil {
			return err
		}
		select {
		case <-stream.Context().Done():
			return nil
		case <-tick.C:
		}
	}
}

// MetricName is the metric KEDA asks for, per function.
func MetricName(function string) string {
	return "mesp-" + strings.Trim(unsafeMetric.ReplaceAllString(strings.ToLower(function), "-"), "-")
}

var unsafeMetric = regexp.MustCompile(`[^a-z0-9]+`)

// GetMetricSpec tells KEDA the metric and its per-replica target.
func (s *Server) GetMetricSpec(_ context.Context, ref *externalscaler.ScaledObjectRef) (*externalscaler.GetMetricSpecResponse, error) {
	t, err := s.parse(ref)
	if err != nil {
		return nil, err
	}
	return &externalscaler.GetMetricSpecResponse{MetricSpecs: []*externalscaler.MetricSpec{{
		MetricName: MetricName(t.function), TargetSize: int64(math.Ceil(t.target)), TargetSizeFloat: t.target,
	}}}, nil
}

// GetMetrics is the demand coming: the largest per-minute count at the
// trigger's quantile (default 0.9; "mean": the expected count) over the
// next demandMinutes minutes.
func (s *Server) GetMetrics(ctx context.Context, req *externalscaler.GetMetricsRequest) (*externalscaler.GetMetricsResponse, error) {
	t, err := s.parse(req.GetScaledObjectRef())
	if err != nil {
		return nil, err
	}
	if name := req.GetMetricName(); name != "" && name != MetricName(t.function) {
		return nil, status.Errorf(codes.InvalidArgument, "metric %q: this trigger's metric is %q", name, MetricName(t.function))
	}
	d, err := s.decide(ctx, t)
	if err != nil {
		return nil, err
	}
	return &externalscaler.GetMetricsResponse{MetricValues: []*externalscaler.MetricValue{{
		MetricName: MetricName(t.function), MetricValue: int64(math.Ceil(d.demand)), MetricValueFloat: d.demand,
	}}}, nil
}
