package kshape

import (
	"context"
	"fmt"
)

// Test-only entry points: k-Shape from a given start, to compare with
// other implementations started the same way.

// FitFrom runs one k-Shape from a given initial assignment (to compare with
// other implementations started the same way).
func FitFrom(ctx context.Context, series [][]float64, labels []int, opts Options) (*Result, error) {
	d, err := datasetOf(series, &opts)
	if err != nil {
		return nil, err
	}
	if len(labels) != d.n {
		return nil, fmt.Errorf("%w: %d labels for %d series", ErrInput, len(labels), d.n)
	}
	for _, l := range labels {
		if l < 0 || l >= opts.K {
			return nil, fmt.Errorf("%w: label %d outside 0..%d", ErrInput, l, opts.K-1)
		}
	}
	return d.run(ctx, 0, append([]int(nil), labels...), nil, opts)
}

// FitFromCentroids runs one k-Shape from given initial centroids (as
// tslearn's KShape with an init array): assign, then refine and assign
// until no label changes.
func FitFromCentroids(ctx context.Context, series [][]float64, centroids [][]float64, opts Options) (*Result, error) {
	d, err := datasetOf(series, &opts)
	if err != nil {
		return nil, err
	}
	if len(centroids) != opts.K {
		return nil, fmt.Errorf("%w: %d centroids for k=%d", ErrInput, len(centroids), opts.K)
	}
	init := make([][]float64, len(centroids))
	for j, c := range centroids {
		if len(c) != d.m {
			return nil, fmt.Errorf("%w: centroid %d has length %d, want %d", ErrInput, j, len(c), d.m)
		}
		init[j] = ZNormalize(c)
	}
	return d.run(ctx, 0, nil, init, opts)
}
