package trace

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/parquet-go/parquet-go"
)

// ParquetRow is the schema of a cluster's data file (cluster-<id>.parquet),
// the contract with training/: one row per function, its id and its
// per-minute counts as a list of float32, in minute order.
type ParquetRow struct {
	Function string    `parquet:"function"`
	Counts   []float32 `parquet:"counts,list"`
}

// WriteParquet writes functions to path (zstd-compressed), atomically.
func WriteParquet(path string, fns []Function) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("trace: %w", err)
	}
	w := parquet.NewGenericWriter[ParquetRow](f, parquet.Compression(&parquet.Zstd))
	rows := make([]ParquetRow, 0, 256)
	flush := func() error {
		_, err := w.Write(rows)
		rows = rows[:0]
		return err
	}
	for _, fn := range fns {
		c := make([]float32, len(fn.Counts))
		for i, v := range fn.Counts {
			c[i] = float32(v)
		}
		rows = append(rows, ParquetRow{Function: fn.ID, Counts: c})
		if len(rows) == cap(rows) {
			if err := flush(); err != nil {
				f.Close()
				return fmt.Errorf("trace: %s: %w", path, err)
			}
		}
	}
	err = errors.Join(flush(), w.Close(), f.Close())
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("trace: %s: %w", path, err)
	}
	return os.Rename(tmp, path)
}

// ReadParquet reads a file written by WriteParquet.
func ReadParquet(path string) ([]Function, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("trace: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("trace: %w", err)
	}
	// OpenFile checks the footer and schema and reports a bad file as an
	// error; the generic reader would panic on one.
	if _, err := parquet.OpenFile(f, st.Size()); err != nil {
		return nil, fmt.Errorf("trace: %s: not a readable Parquet file: %w", path, err)
	}
	r := parquet.NewGenericReader[ParquetRow](f)
	defer r.Close()
	var out []Function
	buf := make([]ParquetRow, 128)
	for {
		n, err := r.Read(buf)
		for _, row := range buf[:n] {
			c := make([]float64, len(row.Counts))
			for i, v := range row.Counts {
				c[i] = float64(v)
			}
			out = append(out, Function{ID: row.Function, Counts: c})
		}
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("trace: %s: %w", path, err)
		}
	}
}
