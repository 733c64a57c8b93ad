package onnx

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Predictor runs rows through a model (PredictDense: with a second
// input's values per row, for a model that takes one).
type Predictor interface {
	Predict(ctx context.Context, in []float32, n int) ([]float32, error)
	PredictDense(ctx context.Context, in, dense []float32, n int) ([]float32, error)
}

// Batcher merges small concurrent Predict calls to one model into one Run,
// which is where ONNX Runtime's throughput comes from when many
// single-function requests arrive at once. Calls with at least maxRows
// rows run directly.
//
// A collector takes every call already queued without waiting; it waits up
// to `wait` for more only while another run of the model is in flight
// (the cores are busy anyway, so the wait costs little latency and buys a
// larger batch). An idle model runs a lone call at once: at low load,
// batching adds no latency.
type Batcher struct {
	m       *Model
	wait    time.Duration
	maxRows int
	jobs    chan *job
	stop    chan struct{}
	wg      sync.WaitGroup
	running atomic.Int32 // runs in flight
}

type job struct {
	in []float32
	// dense is the second input's values per row (nil unless the model
	// takes one)
	dense []float32
	n     int
	out   []float32
	err   error
	done  chan struct{}
}

// NewBatcher starts one collector per core.
func NewBatcher(m *Model, wait time.Duration, maxRows int) *Batcher {
	b := &Batcher{m: m, wait: wait, maxRows: maxRows, jobs: make(chan *job), stop: make(chan struct{})}
	for range runtime.GOMAXPROCS(0) {
		b.wg.Add(1)
		go b.collect()
	}
	return b
}

// Predict is Model.Predict, batched with concurrent callers.
func (b *Batcher) Predict(ctx context.Context, in []float32, n int) ([]float32, error) {
	return b.PredictDense(ctx, in, nil, n)
}

// PredictDense is Model.PredictDense, batched with concurrent callers.
func (b *Batcher) PredictDense(ctx context.Context, in, dense []float32, n int) ([]float32, error) {
	if n >= b.maxRows || b.wait <= 0 {
		return b.m.PredictDense(ctx, in, dense, n)
	}
	j := &job{in: in, dense: dense, n: n, done: make(chan struct{})}
	select {
	case b.jobs <- j:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	<-j.done // a job once taken is always answered
	return j.out, j.err
}

func (b *Batcher) collect() {
	defer b.wg.Done()
	var in []float32 // this collector's merged input, reused run after run
	for {
		var first *job
		select {
		case first = <-b.jobs:
		case <-b.stop:
			return
		}
		batch, rows := b.gather([]*job{first}, first.n, nil)
		if rows < b.maxRows && b.running.Load() > 0 {
			timer := time.NewTimer(b.wait)
			batch, rows = b.gather(batch, rows, timer.C)
			timer.Stop()
		}
		b.running.Add(1)
		in = b.run(batch, rows, in[:0])
		b.running.Add(-1)
	}
}

// gather adds queued calls to batch up to maxRows rows: with a nil timeout
// only those already waiting, else until the timeout fires.
func (b *Batcher) gather(batch []*job, rows int, timeout <-chan time.Time) ([]*job, int) {
	for rows < b.maxRows {
		var j *job
		if timeout == nil {
			select {
			case j = <-b.jobs:
			default:
				return batch, rows
			}
		} else {
			select {
			case j = <-b.jobs:
			case <-timeout:
				return batch, rows
			}
		}
		batch = append(batch, j)
		rows += j.n
	}
	return batch, rows
}

// run answers batch in one Predict, merging the inputs into in (a lone
// job's input is used as it is), and returns in for reuse.
func (b *Batcher) run(batch []*job, rows int, in []float32) []float32 {
	x, dense := batch[0].in, batch[0].dense
	if len(batch) > 1 {
		dense = nil
		for _, j := range batch {
			in = append(in, j.in...)
			dense = append(dense, j.dense...)
		}
		x = in
	}
	out, err := b.m.PredictDense(context.Background(), x, dense, rows)
	off := 0
	for _, j := range batch {
		if err != nil {
			j.err = err
		} else {
			j.out = out[off*b.m.Width() : (off+j.n)*b.m.Width()]
		}
		off += j.n
		close(j.done)
	}
	return in
}

// Close stops the collectors; callers make sure no Predict is pending.
func (b *Batcher) Close() {
	close(b.stop)
	b.wg.Wait()
}
