package main

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// The chart is drawn with gonum.org/v1/plot: one horizontal bar per ratio,
// on a log scale, with the target (if any) as a red mark on the bar's row.

type bar struct {
	Label  string
	Value  float64 // a ratio; 0 or less is drawn as "0"
	Tool   tool
	Target float64 // 0: none
}

var (
	colNF     = color.RGBA{0x2b, 0x6c, 0xb0, 0xff}
	colBase   = color.RGBA{0xe0, 0x8a, 0x1e, 0xff}
	colTarget = color.RGBA{0xd0, 0x20, 0x20, 0xff}
	colGrid   = color.RGBA{0xd8, 0xd8, 0xd8, 0xff}
	colOne    = color.RGBA{0x60, 0x60, 0x60, 0xff}
)

func drawChart(file, title, subtitle string, bars []bar) error {
	if len(bars) == 0 {
		bars = []bar{{Label: "no ratio was measured", Value: 0, Tool: nf}}
	}
	p := plot.New()
	p.Title.Text = title + "\n" + subtitle
	p.Title.TextStyle.Font.Size = vg.Points(13)
	p.X.Label.Text = "ratio (log scale; lower is better; ratios of one run on one buildkitd)"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = ratioTicks{}

	// NominalY puts the first name at the bottom; the table's first
	// metric belongs at the top.
	labels := make([]string, len(bars))
	for i, b := range bars {
		labels[len(bars)-1-i] = b.Label
	}
	p.NominalY(labels...)

	grid := plotter.NewGrid()
	grid.Horizontal.Color = color.Transparent
	grid.Vertical.Color = colGrid
	rb := &ratioBars{bars: bars}
	one, err := plotter.NewLine(plotter.XYs{{X: 1, Y: -0.5}, {X: 1, Y: float64(len(bars)) - 0.5}})
	if err != nil {
		return err
	}
	one.LineStyle.Color = colOne
	one.LineStyle.Width = vg.Points(1)
	p.Add(grid, rb, one)

	p.Legend.Top = true
	p.Legend.Left = false
	p.Legend.TextStyle.Font.Size = vg.Points(10)
	p.Legend.Add("nix-frontend", swatch{colNF})
	p.Legend.Add("baseline Dockerfile", swatch{colBase})
	p.Legend.Add("target", swatch{colTarget})

	// Drawn by hand rather than with p.Save, for a margin: gonum sizes the
	// axis for its labels so tightly that the longest one touches the edge.
	height := vg.Length(len(bars))*vg.Points(24) + vg.Points(150)
	canvas := vgimg.NewWith(vgimg.UseWH(vg.Points(1100), height), vgimg.UseDPI(96), vgimg.UseBackgroundColor(color.White))
	p.Draw(draw.Crop(draw.New(canvas), vg.Points(12), -vg.Points(12), vg.Points(6), -vg.Points(6)))
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: canvas}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ratioBars draws the bars from the left edge of the plot to their value,
// so that a log scale, which has no 0, can hold them.
type ratioBars struct{ bars []bar }

func (r *ratioBars) DataRange() (xmin, xmax, ymin, ymax float64) {
	lo, hi := 1.0, 1.0
	for _, b := range r.bars {
		for _, v := range []float64{b.Value, b.Target} {
			if v > 0 {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
	}
	// Whole decades, with room on the right for the value labels.
	lo = math.Pow(10, math.Floor(math.Log10(lo)))
	hi = math.Pow(10, math.Ceil(math.Log10(hi*3)))
	return lo, hi, -0.5, float64(len(r.bars)) - 0.5
}

func (r *ratioBars) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	x0 := trX(p.X.Min)
	half := (trY(1) - trY(0)) * 0.35
	label := draw.TextStyle{
		Color:   color.Black,
		Font:    p.Y.Tick.Label.Font,
		XAlign:  0,
		YAlign:  -0.5,
		Handler: p.Y.Tick.Label.Handler,
	}
	n := len(r.bars)
	for i, b := range r.bars {
		y := trY(float64(n - 1 - i))
		col := colNF
		if b.Tool == baseline {
			col = colBase
		}
		x1 := x0 + vg.Points(2)
		val := "0"
		if b.Value > 0 {
			x1 = max(trX(b.Value), x1)
			val = trimFloat(b.Value) + "×"
		}
		c.FillPolygon(col, []vg.Point{{X: x0, Y: y - half}, {X: x1, Y: y - half}, {X: x1, Y: y + half}, {X: x0, Y: y + half}})
		xl := x1
		if b.Target > 0 {
			xt := trX(b.Target)
			c.StrokeLine2(draw.LineStyle{Color: colTarget, Width: vg.Points(3)}, xt, y-half*1.3, xt, y+half*1.3)
			// The value's label clear of the target's mark.
			if xt >= x1-vg.Points(2) && xt-x1 < vg.Points(30) {
				xl = xt + vg.Points(2)
			}
		}
		c.FillText(label, vg.Point{X: xl + vg.Points(4), Y: y}, val)
	}
}

// swatch is a legend entry's coloured box.
type swatch struct{ c color.Color }

func (s swatch) Thumbnail(c *draw.Canvas) {
	r := c.Rectangle
	c.FillPolygon(s.c, []vg.Point{r.Min, {X: r.Max.X, Y: r.Min.Y}, r.Max, {X: r.Min.X, Y: r.Max.Y}})
}

// ratioTicks labels every decade, and 2 and 5 within it when the axis
// spans few decades.
type ratioTicks struct{}

func (ratioTicks) Ticks(min, max float64) []plot.Tick {
	var ticks []plot.Tick
	few := math.Log10(max/min) <= 3
	for d := math.Pow(10, math.Floor(math.Log10(min))); d <= max*1.0001; d *= 10 {
		for _, m := range []float64{1, 2, 5} {
			v := d * m
			if v < min*0.9999 || v > max*1.0001 {
				continue
			}
			t := plot.Tick{Value: v}
			if m == 1 || few {
				t.Label = trimFloat(v)
			}
			ticks = append(ticks, t)
		}
	}
	return ticks
}

func trimFloat(v float64) string {
	var s string
	switch {
	case v >= 100:
		s = fmt.Sprintf("%.0f", v)
	case v >= 10:
		s = fmt.Sprintf("%.1f", v)
	case v >= 0.1:
		s = fmt.Sprintf("%.2f", v)
	case v >= 0.01:
		s = fmt.Sprintf("%.3f", v)
	default:
		s = fmt.Sprintf("%.4f", v)
	}
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}
