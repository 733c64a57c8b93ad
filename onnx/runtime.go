// Package onnx runs exported MESP forecasters through ONNX Runtime
// (github.com/yalue/onnxruntime_go, ONNX Runtime 1.29.x).
package onnx

import (
	"errors"
	"fmt"
	"os"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

var (
	initOnce    sync.Once
	initErr     error
	initLibrary string
)

// Init loads the shared library and creates the process's one ONNX Runtime
// environment. Later calls return the first call's result; asking for a
// different library after the first call is an error.
func Init(library string) (version string, err error) {
	initOnce.Do(func() {
		initLibrary = library
		if _, statErr := os.Stat(library); statErr != nil {
			initErr = fmt.Errorf("onnx: runtime library: %w (run scripts/setup-ort.sh or set ort.library)", statErr)
			return
		}
		// The stock library sends usage telemetry (a device id and an event
		// queue under ~/.cache/Microsoft, a collector lookup, and
		// /tmp/mat-debug-<pid>.log); MESP switches it off before the
		// library is loaded, and once more through the API.
		os.Setenv("ORT_DISABLE_TELEMETRY", "1")
		ort.SetSharedLibraryPath(library)
		if e := ort.InitializeEnvironment(ort.WithLogLevelError()); e != nil {
			initErr = fmt.Errorf("onnx: initialise %s: %w", library, e)
			return
		}
		if e := ort.DisableTelemetry(); e != nil {
			initErr = fmt.Errorf("onnx: disable telemetry: %w", e)
		}
	})
	if initErr != nil {
		return "", initErr
	}
	if library != initLibrary {
		return "", fmt.Errorf("onnx: already initialised with %s, not %s", initLibrary, library)
	}
	return ort.GetVersion(), nil
}

// Options are per-session settings.
type Options struct {
	IntraOpThreads int
	// MaxRowsPerRun splits a call of more rows into runs of at most that
	// many (0: one run whatever the rows). ONNX Runtime's arena keeps the
	// largest run's intermediate tensors for good, and the dense p_invoke
	// graph's are a day wide: at 256 rows they held about 75 MiB more
	// than at 64 (`make bench-fleet`).
	MaxRowsPerRun int
	// Stats, when set, counts every run of the models loaded with these
	// options (RunStats).
	Stats *RunStats
	// Provider is "cpu" or "cuda".
	Provider   string
	CUDADevice int
}

// ErrNoCUDA says the loaded library cannot run the CUDA provider.
var ErrNoCUDA = errors.New("onnx: the ONNX Runtime library has no CUDA execution provider (use a GPU build and its provider libraries)")

func sessionOptions(o Options) (*ort.SessionOptions, error) {
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("onnx: session options: %w", err)
	}
	if o.IntraOpThreads > 0 {
		if err := so.SetIntraOpNumThreads(o.IntraOpThreads); err != nil {
			so.Destroy()
			return nil, fmt.Errorf("onnx: intra-op threads: %w", err)
		}
	}
	switch o.Provider {
	case "", "cpu":
	case "cuda":
		cuda, err := ort.NewCUDAProviderOptions()
		if err != nil {
			so.Destroy()
			return nil, fmt.Errorf("%w: %v", ErrNoCUDA, err)
		}
		defer cuda.Destroy()
		if err := cuda.Update(map[string]string{"device_id": fmt.Sprint(o.CUDADevice)}); err != nil {
			so.Destroy()
			return nil, fmt.Errorf("%w: %v", ErrNoCUDA, err)
		}
		if err := so.AppendExecutionProviderCUDA(cuda); err != nil {
			so.Destroy()
			return nil, fmt.Errorf("%w: %v", ErrNoCUDA, err)
		}
	default:
		so.Destroy()
		return nil, fmt.Errorf("onnx: unknown provider %q", o.Provider)
	}
	return so, nil
}
