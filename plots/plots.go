// Package plots draws the pictures people look at instead of reading
// numbers: cluster centroids, example forecasts, error by cluster and the
// cold-start vs idle-memory trade-off.
package plots

import (
	"fmt"
	"image/color"
	"math"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Series is one named line.
type Series struct {
	Name string
	X, Y []float64
	// Dashed draws a dashed line (forecasts against actuals).
	Dashed bool
}

// newPlot is a plot with a title, axis labels, a grid and the legend on top.
func newPlot(title, xLabel, yLabel string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xLabel
	p.Y.Label.Text = yLabel
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	return p
}

// Lines saves a line chart (PNG or SVG by the file extension).
func Lines(path, title, xLabel, yLabel string, series []Series, width, height vg.Length) error {
	p := newPlot(title, xLabel, yLabel)
	for i, s := range series {
		xy := make(plotter.XYs, len(s.Y))
		for t := range s.Y {
			xy[t].X, xy[t].Y = s.X[t], s.Y[t]
		}
		l, err := plotter.NewLine(xy)
		if err != nil {
			return fmt.Errorf("plots: %s: %w", s.Name, err)
		}
		l.Color = plotutil.Color(i)
		l.Width = vg.Points(1)
		if s.Dashed {
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
		}
		p.Add(l)
		p.Legend.Add(s.Name, l)
	}
	return p.Save(width, height, path)
}

// Centroids draws K centroids stacked with a vertical offset, labelled
// with their size, so shapes can be compared at a glance.
func Centroids(path string, centroids [][]float64, sizes []int) error {
	var series []Series
	for j, c := range centroids {
		x := make([]float64, len(c))
		y := make([]float64, len(c))
		for t, v := range c {
			x[t] = float64(t) / 60
			y[t] = v - float64(j)*6
		}
		series = append(series, Series{Name: fmt.Sprintf("cluster %d (n=%d)", j, sizes[j]), X: x, Y: y})
	}
	return Lines(path, "K-Shape centroids (z-normalised, offset by cluster)", "hour of day", "shape", series, 10*vg.Inch, vg.Length(1.2*float64(len(centroids))+2)*vg.Inch)
}

// Point is one labelled point of a scatter.
type Point struct {
	Name string
	X, Y float64
}

// TradeOff draws curves (e.g. MESP over thresholds) and baseline points,
// the y axis on a log scale when the values span more than a decade
// (cold-start rates span orders of magnitude; within one decade a log axis
// would carry no labels); points with y <= 0 are left out.
func TradeOff(path, title, xLabel, yLabel string, curves [][]Point, points []Point) error {
	p := newPlot(title, xLabel, yLabel)
	lo, hi := math.Inf(1), 0.0
	for _, c := range append(slices.Concat(curves...), points...) {
		if c.Y > 0 {
			lo, hi = min(lo, c.Y), max(hi, c.Y)
		}
	}
	if hi > 10*lo {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	}
	colors := []color.Color{color.RGBA{B: 200, A: 255}, color.RGBA{R: 200, G: 100, A: 255},
		color.RGBA{G: 150, A: 255}, color.RGBA{R: 200, B: 200, A: 255}, color.RGBA{R: 120, G: 120, B: 120, A: 255},
		color.RGBA{G: 160, B: 160, A: 255}, color.RGBA{R: 220, A: 255}}
	for ci, curve := range curves {
		var xy plotter.XYs
		for _, c := range curve {
			if c.Y > 0 {
				xy = append(xy, plotter.XY{X: c.X, Y: c.Y})
			}
		}
		if len(xy) == 0 {
			continue
		}
		l, s, err := plotter.NewLinePoints(xy)
		if err != nil {
			return err
		}
		l.Color = colors[ci%len(colors)]
		s.Color = l.Color
		p.Add(l, s)
		p.Legend.Add(curve[0].Name, l, s)
	}
	for i, pt := range points {
		if pt.Y <= 0 {
			continue
		}
		s, err := plotter.NewScatter(plotter.XYs{{X: pt.X, Y: pt.Y}})
		if err != nil {
			return err
		}
		s.Color = plotutil.Color(i + 1)
		s.Shape = plotutil.Shape(i + 1)
		s.Radius = vg.Points(5)
		p.Add(s)
		p.Legend.Add(pt.Name, s)
	}
	return p.Save(7*vg.Inch, 5*vg.Inch, path)
}

// Bars draws grouped bars: one group per label, one bar per series.
func Bars(path, title, yLabel string, labels []string, names []string, values [][]float64) error {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = yLabel
	w := vg.Points(12)
	for i, name := range names {
		b, err := plotter.NewBarChart(plotter.Values(values[i]), w)
		if err != nil {
			return err
		}
		b.Color = plotutil.Color(i)
		b.Offset = vg.Length(float64(i)-float64(len(names)-1)/2) * w
		p.Add(b)
		p.Legend.Add(name, b)
	}
	p.Legend.Top = true
	p.Legend.Left = true
	p.NominalX(labels...)
	return p.Save(vg.Length(max(6, len(labels)))*vg.Inch, 4*vg.Inch, path)
}
