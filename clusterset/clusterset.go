// Package clusterset writes a clustering as the set the rest of MESP reads:
// clusters.json (centroids, members, full-day and partial-window radii),
// one Parquet file of raw counts per cluster, and the centroid plot; and
// calibrates the partial-window radii (`mesp cluster`, `mesp cluster add`,
// `mesp cluster calibrate`).
package clusterset

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/mesp-project/mesp/kshape"
	"github.com/mesp-project/mesp/manifest"
	"github.com/mesp-project/mesp/plots"
	"github.com/mesp-project/mesp/router"
	"github.com/mesp-project/mesp/trace"
)

// Fit is a K-Shape clustering of a trace's part: the functions' ids in the
// trace's order, the result and the settings it was fitted with.
type Fit struct {
	IDs       []string
	Length    int
	Result    *kshape.Result
	K         int
	Seed      int64
	Transform kshape.Transform
}

// Write writes a clustering to dir: clusters.json (with every cluster's
// 99% radius and partial-window radii), one Parquet file per cluster with
// the members' raw counts (streamed again from data: the same rows in the
// same order as fit.IDs, else it fails) and the centroid plot.
func Write(ctx context.Context, dir, data string, opts trace.Options, part trace.Part, fit Fit) error {
	ids, length, res, k := fit.IDs, fit.Length, fit.Result, fit.K
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	thresholds := kshape.Threshold(res, k, 0.99)
	cs := manifest.Clusters{Version: manifest.Version, K: k, Seed: fit.Seed, Objective: res.Objective, Length: length,
		Transform: fit.Transform}
	sizes := make([]int, k)
	for i, id := range ids {
		sizes[res.Labels[i]]++
		cs.Members = append(cs.Members, manifest.Member{Function: id, Cluster: res.Labels[i], Distance: res.Distances[i]})
	}
	writers := make([]*trace.ParquetWriter, k)
	abort := func() {
		for _, w := range writers {
			if w != nil {
				w.Abort()
			}
		}
	}
	for j := range k {
		name := fmt.Sprintf("cluster-%d.parquet", j)
		w, err := trace.CreateParquet(filepath.Join(dir, name))
		if err != nil {
			abort()
			return err
		}
		writers[j] = w
		cs.Clusters = append(cs.Clusters, manifest.Cluster{ID: j, Size: sizes[j], Centroid: res.Centroids[j], Threshold: thresholds[j], Parquet: name})
	}
	// The same pass gathers the days the partial-window radii are
	// calibrated on.
	calib := Calibration{Length: length}
	i := 0
	if _, err := trace.Each(data, opts, func(f trace.Function) error {
		calib.Add(f)
		if !part.Contains(f.ID) {
			return nil
		}
		if i >= len(ids) || ids[i] != f.ID {
			return fmt.Errorf("%s changed while it was clustered: row %d is not %q", data, i, ids[min(i, len(ids)-1)])
		}
		err := writers[res.Labels[i]].Write(f)
		i++
		return err
	}); err != nil {
		abort()
		return err
	}
	if i != len(ids) {
		abort()
		return fmt.Errorf("%s changed while it was clustered: %d rows, was %d", data, i, len(ids))
	}
	for j, w := range writers {
		writers[j] = nil
		if err := w.Close(); err != nil {
			abort()
			return err
		}
	}
	if err := calib.Calibrate(ctx, &cs, data); err != nil {
		return err
	}
	if err := manifest.Write(filepath.Join(dir, "clusters.json"), cs); err != nil {
		return err
	}
	if err := plots.Centroids(filepath.Join(dir, "centroids.png"), res.Centroids, sizes); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "cluster: sizes %v; wrote %s/clusters.json, %d Parquet files, centroids.png\n", sizes, dir, k)
	return nil
}

// CalibrationDays caps the functions calibration routes: 99% radii need a
// few thousand windows per cluster, not every row of a large trace.
const CalibrationDays = 20000

// Calibration gathers the days partial-window radii are calibrated on:
// the training part's non-validation functions (so that validation
// functions can check the OOD rate), at most CalibrationDays of them.
type Calibration struct {
	Length int
	ids    []string
	days   [][]float64
}

// Add offers one function of the trace.
func (c *Calibration) Add(f trace.Function) {
	if trace.IsTest(f.ID) || trace.IsValidation(f.ID) || len(c.days) >= CalibrationDays || len(f.Counts) != c.Length {
		return
	}
	c.ids, c.days = append(c.ids, f.ID), append(c.days, append([]float64(nil), f.Counts...))
}

// Calibrate sets every cluster's partial-window radii from the days
// gathered from data.
func (c *Calibration) Calibrate(ctx context.Context, cs *manifest.Clusters, data string) error {
	if len(c.days) == 0 {
		return fmt.Errorf("calibrate: %s has no training functions of %d minutes", data, cs.Length)
	}
	return SetRadii(ctx, cs, c.ids, c.days, nil)
}

// SetRadii calibrates on the given days and stores the radii of the
// clusters in only (all when nil).
func SetRadii(ctx context.Context, cs *manifest.Clusters, ids []string, days [][]float64, only map[int]bool) error {
	rt, err := router.New(*cs)
	if err != nil {
		return err
	}
	lengths := router.CalibrationLengths(cs.Length)
	radii, err := rt.Calibrate(ctx, ids, days, lengths, 0.99, func(done, total int) {
		fmt.Fprintf(os.Stderr, "\rcalibrate: %d functions, window length %d of %d   ", len(days), done, total)
	})
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return err
	}
	for j := range cs.Clusters {
		if only == nil || only[cs.Clusters[j].ID] {
			cs.Clusters[j].PartialThresholds = radii[j]
		}
	}
	return nil
}
