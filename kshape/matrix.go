package kshape

import (
	"fmt"
	"math"
)

// chunkRows is the rows per storage block: the matrix grows by blocks, so
// appending a row never copies the ones before it (a doubling slice would
// briefly hold two copies of 500,000 rows).
const chunkRows = 1024

// Matrix holds z-normalised series of one length as float32, in blocks of
// rows: 500,000 daily series take 2.9 GB, and no spectrum is kept per row
// (they are recomputed on the fly, one FFT per row per iteration), so
// memory grows with n by 4m bytes per row only. Rows are appended one at a
// time, so a caller can stream them from a file without holding the raw
// counts.
type Matrix struct {
	m         int
	blocks    [][]float32
	shapeless []bool
	z         []float64 // Append's scratch
}

// NewMatrix makes an empty matrix for series of length m, with room for
// capacity rows' flags (the data grows by blocks).
func NewMatrix(m, capacity int) *Matrix {
	return &Matrix{m: m, shapeless: make([]bool, 0, capacity), z: make([]float64, m)}
}

// Append z-normalises one raw series and adds it.
func (x *Matrix) Append(raw []float64) error {
	if len(raw) != x.m {
		return fmt.Errorf("%w: series %d has length %d, want %d", ErrInput, x.Rows(), len(raw), x.m)
	}
	for t, v := range raw {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("%w: series %d value %d is %v", ErrInput, x.Rows(), t, v)
		}
	}
	n := x.Rows()
	if n%chunkRows == 0 {
		x.blocks = append(x.blocks, make([]float32, 0, chunkRows*x.m))
	}
	ZNormalizeInto(x.z, raw)
	b := &x.blocks[len(x.blocks)-1]
	flat := true
	for _, v := range x.z {
		*b = append(*b, float32(v))
		flat = flat && v == 0
	}
	x.shapeless = append(x.shapeless, flat)
	return nil
}

// Rows is the number of series.
func (x *Matrix) Rows() int { return len(x.shapeless) }

// Len is the series length.
func (x *Matrix) Len() int { return x.m }

// row32 is row i as stored (read-only).
func (x *Matrix) row32(i int) []float32 {
	off := (i % chunkRows) * x.m
	return x.blocks[i/chunkRows][off : off+x.m]
}

// Row copies row i into dst (len m) as float64.
func (x *Matrix) Row(i int, dst []float64) []float64 {
	for t, v := range x.row32(i) {
		dst[t] = float64(v)
	}
	return dst
}

// MatrixOf builds a matrix from in-memory series.
func MatrixOf(series [][]float64) (*Matrix, error) {
	if len(series) == 0 {
		return nil, fmt.Errorf("%w: no series", ErrInput)
	}
	x := NewMatrix(len(series[0]), len(series))
	for _, s := range series {
		if err := x.Append(s); err != nil {
			return nil, err
		}
	}
	return x, nil
}
