// Package trace reads per-minute invocation counts in the Azure Functions
// 2019 layout (HashOwner,HashApp,HashFunction,Trigger,1..1440), validates
// them and splits a data set into training and test functions.
//
// It is the one loader of that layout in MESP: clustering, evaluation and
// the out-of-distribution tooling all read through it.
package trace

import (
	"bufio"
	"compress/gzip"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
)

// MinutesPerDay is the number of per-minute columns of one daily file.
const MinutesPerDay = 1440

// idColumns are the leading, non-numeric columns of the layout.
var idColumns = []string{"HashOwner", "HashApp", "HashFunction", "Trigger"}

// Function is one row: one function's per-minute invocation counts.
type Function struct {
	Owner, App, ID, Trigger string
	Counts                  []float64
	// Line is the 1-based line of the row in its file (for error messages).
	Line int
}

// ParseError says precisely what is wrong with an input file.
type ParseError struct {
	File   string
	Line   int    // 1-based; 0 when the error is not tied to a line
	Column string // header name of the offending column, if any
	Err    error
}

func (e *ParseError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Column != "" {
		fmt.Fprintf(&b, ": column %q", e.Column)
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	return b.String()
}

func (e *ParseError) Unwrap() error { return e.Err }

// Sentinel causes, so callers can tell them apart with errors.Is.
var (
	ErrHeader      = errors.New("bad header")
	ErrRagged      = errors.New("ragged row")
	ErrNonNumeric  = errors.New("non-numeric count")
	ErrNegative    = errors.New("negative count")
	ErrNaN         = errors.New("NaN or infinite count")
	ErrTooLarge    = errors.New("count too large")
	ErrTruncated   = errors.New("truncated input")
	ErrEmptyFileID = errors.New("empty HashFunction")
)

// Options controls validation.
type Options struct {
	// SkipBad skips invalid rows and counts them (Reader.Skipped) instead of
	// failing. Header errors and truncated files always fail.
	SkipBad bool
}

// Reader streams rows of one file; it never holds more than one row.
type Reader struct {
	name    string
	file    *os.File
	gz      *gzip.Reader
	csv     *csv.Reader
	header  []string
	opts    Options
	skipped int
}

// Open opens a CSV or gzip-compressed CSV (detected by its magic bytes, not
// its name) and checks its header.
func Open(path string, opts Options) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("trace: %w", err)
	}
	r, err := NewReader(f, path, opts)
	if err != nil {
		f.Close()
		return nil, err
	}
	r.file = f
	return r, nil
}

// NewReader reads from src; name is used in error messages.
func NewReader(src io.Reader, name string, opts Options) (*Reader, error) {
	br := bufio.NewReaderSize(src, 1<<20)
	r := &Reader{name: name, opts: opts}
	var in io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, &ParseError{File: name, Err: fmt.Errorf("%w: %v", ErrTruncated, err)}
		}
		r.gz = gz
		in = gz
	}
	r.csv = csv.NewReader(in)
	r.csv.FieldsPerRecord = -1 // we report ragged rows ourselves, with context
	r.csv.ReuseRecord = true
	header, err := r.csv.Read()
	if err != nil {
		return nil, r.wrapIOError(err, 1)
	}
	if err := checkHeader(header); err != nil {
		return nil, &ParseError{File: name, Line: 1, Err: err}
	}
	r.header = append([]string(nil), header...)
	return r, nil
}

func checkHeader(h []string) error {
	if len(h) < len(idColumns)+1 {
		return fmt.Errorf("%w: %d columns, want %v followed by minute columns 1..%d", ErrHeader, len(h), idColumns, MinutesPerDay)
	}
	for i, want := range idColumns {
		if strings.TrimSpace(strings.TrimPrefix(h[i], "\ufeff")) != want {
			return fmt.Errorf("%w: column %d is %q, want %q", ErrHeader, i+1, h[i], want)
		}
	}
	for i, name := range h[len(idColumns):] {
		if name != strconv.Itoa(i+1) {
			return fmt.Errorf("%w: minute column %d is named %q, want %q", ErrHeader, i+1, name, strconv.Itoa(i+1))
		}
	}
	if n := len(h) - len(idColumns); n != MinutesPerDay {
		return fmt.Errorf("%w: missing minute columns: %d of %d", ErrHeader, n, MinutesPerDay)
	}
	return nil
}

// Skipped is the number of invalid rows skipped so far (Options.SkipBad).
func (r *Reader) Skipped() int { return r.skipped }

// Next returns the next valid row, or io.EOF after the last one.
func (r *Reader) Next() (Function, error) {
	for {
		rec, err := r.csv.Read()
		line, _ := r.csv.FieldPos(0)
		if err == io.EOF {
			return Function{}, io.EOF
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) && !errors.Is(err, io.ErrUnexpectedEOF) && r.opts.SkipBad {
				r.skip()
				continue
			}
			return Function{}, r.wrapIOError(err, line)
		}
		fn, perr := r.parse(rec, line)
		if perr != nil {
			if r.opts.SkipBad {
				r.skip()
				continue
			}
			return Function{}, perr
		}
		return fn, nil
	}
}

func (r *Reader) skip() { r.skipped++ }

func (r *Reader) wrapIOError(err error, line int) error {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, gzip.ErrChecksum) || errors.Is(err, gzip.ErrHeader) {
		return &ParseError{File: r.name, Line: line, Err: fmt.Errorf("%w: %v", ErrTruncated, err)}
	}
	if err == io.EOF {
		return &ParseError{File: r.name, Line: line, Err: fmt.Errorf("%w: empty file, no header", ErrHeader)}
	}
	return &ParseError{File: r.name, Line: line, Err: err}
}

func (r *Reader) parse(rec []string, line int) (Function, error) {
	if len(rec) != len(r.header) {
		return Function{}, &ParseError{File: r.name, Line: line,
			Err: fmt.Errorf("%w: %d fields, header has %d", ErrRagged, len(rec), len(r.header))}
	}
	fn := Function{Owner: rec[0], App: rec[1], ID: rec[2], Trigger: rec[3], Line: line,
		Counts: make([]float64, len(rec)-len(idColumns))}
	if fn.ID == "" {
		return Function{}, &ParseError{File: r.name, Line: line, Column: "HashFunction", Err: ErrEmptyFileID}
	}
	for i, s := range rec[len(idColumns):] {
		v, err := ParseCount(s)
		if err != nil {
			return Function{}, &ParseError{File: r.name, Line: line, Column: r.header[i+len(idColumns)], Err: err}
		}
		fn.Counts[i] = v
	}
	return fn, nil
}

// ParseCount parses one per-minute count: a finite, non-negative number.
func ParseCount(s string) (float64, error) {
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %q", ErrNonNumeric, s)
	}
	return v, CheckCount(v)
}

// MaxCount is the largest count one function can have in one minute
// (about 17 million a second). Beyond it a count is not an observation
// but a fault or an attack, and the models' float32 arithmetic (a day's
// sum of squares) would overflow to Inf and answer NaN.
const MaxCount = 1e9

// CheckCount validates a count that is already a number.
func CheckCount(v float64) error {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return fmt.Errorf("%w: %v", ErrNaN, v)
	case v < 0:
		return fmt.Errorf("%w: %v", ErrNegative, v)
	case v > MaxCount:
		return fmt.Errorf("%w: %g invocations in a minute, at most %g", ErrTooLarge, v, MaxCount)
	}
	return nil
}

// Close releases the file. A gzip stream that was not read to its end is
// not reported as truncated here; Next does that.
func (r *Reader) Close() error {
	if r.gz != nil {
		r.gz.Close()
	}
	if r.file != nil {
		return r.file.Close()
	}
	return nil
}

// Each streams every valid row of path to fn, stopping at the first error
// from fn or from the file.
func Each(path string, opts Options, fn func(Function) error) (skipped int, err error) {
	r, err := Open(path, opts)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	for {
		f, err := r.Next()
		if err == io.EOF {
			return r.Skipped(), nil
		}
		if err != nil {
			return r.Skipped(), err
		}
		if err := fn(f); err != nil {
			return r.Skipped(), err
		}
	}
}

// ReadAll loads every valid row of path, optionally keeping only one part
// of the split (Part All keeps every row).
func ReadAll(path string, opts Options, part Part) ([]Function, error) {
	var out []Function
	_, err := Each(path, opts, func(f Function) error {
		if part.Contains(f.ID) {
			out = append(out, f)
		}
		return nil
	})
	return out, err
}
