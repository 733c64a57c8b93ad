package trace

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/parquet-go/parquet-go"
)

// ParquetRow is the schema of a cluster's data file (cluster-<id>.parquet),
// the contract with training/: one row per function, its id and its
// per-minute counts as a list of float32, in minute order.
type ParquetRow struct {
	Function string    `parquet:"function"`
	Counts   []float32 `parquet:"counts,list"`
}

// ParquetWriter streams functions into one cluster data file: rows are
// buffered a row group at a time, so writing 500,000 rows holds a few
// megabytes, and the file appears at its path only when Close succeeds.
type ParquetWriter struct {
	path string
	f    *os.File
	w    *parquet.GenericWriter[ParquetRow]
	rows []ParquetRow
}

// parquetRowGroup is the rows per row group (about 6 MB of counts).
const parquetRowGroup = 1024

// CreateParquet starts a ParquetWriter for path (zstd-compressed), making
// its folder if need be (make eval writes under out/, absent in a fresh
// clone).
func CreateParquet(path string) (*ParquetWriter, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("trace: %w", err)
	}
	f, err := os.Create(path + ".tmp")
	if err != nil {
		return nil, fmt.Errorf("trace: %w", err)
	}
	w := parquet.NewGenericWriter[ParquetRow](f, parquet.Compression(&parquet.Zstd), parquet.MaxRowsPerRowGroup(parquetRowGroup))
	return &ParquetWriter{path: path, f: f, w: w, rows: make([]ParquetRow, 0, 128)}, nil
}

// Write adds one function.
func (pw *ParquetWriter) Write(fn Function) error {
	c := make([]float32, len(fn.Counts))
	for i, v := range fn.Counts {
		c[i] = float32(v)
	}
	pw.rows = append(pw.rows, ParquetRow{Function: fn.ID, Counts: c})
	if len(pw.rows) == cap(pw.rows) {
		return pw.flush()
	}
	return nil
}

func (pw *ParquetWriter) flush() error {
	_, err := pw.w.Write(pw.rows)
	pw.rows = pw.rows[:0]
	if err != nil {
		return fmt.Errorf("trace: %s: %w", pw.path, err)
	}
	return nil
}

// Close finishes the file and moves it into place; on any error the
// partial file is removed.
func (pw *ParquetWriter) Close() error {
	err := errors.Join(pw.flush(), pw.w.Close(), pw.f.Close())
	if err != nil {
		os.Remove(pw.f.Name())
		return fmt.Errorf("trace: %s: %w", pw.path, err)
	}
	return os.Rename(pw.f.Name(), pw.path)
}

// Abort drops an unfinished file.
func (pw *ParquetWriter) Abort() {
	pw.f.Close()
	os.Remove(pw.f.Name())
}

// WriteParquet writes functions to path (zstd-compressed), atomically.
func WriteParquet(path string, fns []Function) error {
	pw, err := CreateParquet(path)
	if err != nil {
		return err
	}
	for _, fn := range fns {
		if err := pw.Write(fn); err != nil {
			pw.Abort()
			return err
		}
	}
	return pw.Close()
}

// ReadParquet reads a file written by WriteParquet.
func ReadParquet(path string) ([]Function, error) {
	var out []Function
	err := readParquet(path, func(r *parquet.GenericReader[ParquetRow]) error {
		buf := make([]ParquetRow, 128)
		for {
			n, err := r.Read(buf)
			for _, row := range buf[:n] {
				out = append(out, row.function())
			}
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
		}
	})
	return out, err
}

// ReadParquetMiddleRow reads only the middle row of a file written by
// WriteParquet (an example member of a cluster of any size).
func ReadParquetMiddleRow(path string) (Function, error) {
	var out Function
	err := readParquet(path, func(r *parquet.GenericReader[ParquetRow]) error {
		n := r.NumRows()
		if n == 0 {
			return fmt.Errorf("no rows")
		}
		if err := r.SeekToRow(n / 2); err != nil {
			return err
		}
		buf := make([]ParquetRow, 1)
		if got, err := r.Read(buf); got != 1 {
			if err == nil {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("reading row %d: %w", n/2, err)
		}
		out = buf[0].function()
		return nil
	})
	return out, err
}

func (row ParquetRow) function() Function {
	c := make([]float64, len(row.Counts))
	for i, v := range row.Counts {
		c[i] = float64(v)
	}
	return Function{ID: row.Function, Counts: c}
}

// readParquet opens path, checks it is a readable Parquet file and hands a
// reader of ParquetRow to read.
func readParquet(path string, read func(r *parquet.GenericReader[ParquetRow]) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("trace: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("trace: %w", err)
	}
	// OpenFile checks the footer and schema and reports a bad file as an
	// error; the generic reader would panic on one.
	if _, err := parquet.OpenFile(f, st.Size()); err != nil {
		return fmt.Errorf("trace: %s: not a readable Parquet file: %w", path, err)
	}
	r := parquet.NewGenericReader[ParquetRow](f)
	defer r.Close()
	if err := read(r); err != nil {
		return fmt.Errorf("trace: %s: %w", path, err)
	}
	return nil
}
