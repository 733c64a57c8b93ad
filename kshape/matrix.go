package kshape

import (
	"fmt"
	"math"
)

// Matrix holds z-normalised series of one length as float32, row-major:
// 500,000 daily series take 2.9 GB, and no spectrum is kept per row (they
// are recomputed on the fly, one FFT per row per iteration), so memory
// grows with n by 4m bytes per row only.
type Matrix struct {
	m         int
	data      []float32
	shapeless []bool
}

// NewMatrix makes an empty matrix for series of length m, with room for
// capacity rows.
func NewMatrix(m, capacity int) *Matrix {
	return &Matrix{m: m, data: make([]float32, 0, m*capacity), shapeless: make([]bool, 0, capacity)}
}

// Append z-normalises one raw series and adds it.
func (x *Matrix) Append(raw []float64) error {
	if len(raw) != x.m {
		return fmt.Errorf("%w: series %d has length %d, want %d", ErrInput, x.Rows(), len(raw), x.m)
	}
	z := make([]float64, x.m)
	for t, v := range raw {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("%w: series %d value %d is %v", ErrInput, x.Rows(), t, v)
		}
	}
	ZNormalizeInto(z, raw)
	flat := true
	for _, v := range z {
		x.data = append(x.data, float32(v))
		flat = flat && v == 0
	}
	x.shapeless = append(x.shapeless, flat)
	return nil
}

// Rows is the number of series.
func (x *Matrix) Rows() int { return len(x.shapeless) }

// Len is the series length.
func (x *Matrix) Len() int { return x.m }

// Row copies row i into dst (len m) as float64.
func (x *Matrix) Row(i int, dst []float64) []float64 {
	for t, v := range x.data[i*x.m : (i+1)*x.m] {
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
