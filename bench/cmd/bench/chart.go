package main

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"strings"
)

// The chart is drawn with the standard library only (image/png and a
// built-in 5×7 font), so bench/run needs nothing the machine may lack.

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
	colText   = color.RGBA{0x20, 0x20, 0x20, 0xff}
	colOne    = color.RGBA{0x60, 0x60, 0x60, 0xff}
)

func drawChart(file, title, subtitle string, bars []bar) error {
	const (
		scale   = 2
		rowH    = 34
		labelW  = 560
		plotW   = 560
		right   = 90
		top     = 90
		bottom  = 90
		marginL = 20
	)
	w := marginL + labelW + plotW + right
	h := top + rowH*len(bars) + bottom
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	fill(img, img.Bounds(), color.RGBA{0xff, 0xff, 0xff, 0xff})

	lo, hi := 1.0, 1.0
	for _, b := range bars {
		for _, v := range []float64{b.Value, b.Target} {
			if v > 0 {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
	}
	lo = math.Pow(10, math.Floor(math.Log10(lo)))
	hi = math.Pow(10, math.Ceil(math.Log10(hi)))
	if hi/lo < 100 {
		hi *= 10
	}
	x0 := marginL + labelW
	xOf := func(v float64) int {
		if v <= lo {
			return x0
		}
		return x0 + int(float64(plotW)*math.Log10(v/lo)/math.Log10(hi/lo))
	}

	text(img, marginL, 16, title, colText, scale)
	text(img, marginL, 44, subtitle, colOne, 1)
	// Decades, and the line at 1.
	for v := lo; v <= hi*1.0001; v *= 10 {
		x := xOf(v)
		c := colGrid
		if math.Abs(v-1) < 1e-9 {
			c = colOne
		}
		fill(img, image.Rect(x, top-6, x+1, top+rowH*len(bars)), c)
		lbl := trimFloat(v)
		text(img, x-textWidth(lbl, 1)/2, top+rowH*len(bars)+6, lbl, colText, 1)
	}
	for i, b := range bars {
		y := top + i*rowH
		text(img, marginL, y+rowH/2-7, b.Label, colText, scale)
		c := colNF
		if b.Tool == baseline {
			c = colBase
		}
		xe := xOf(b.Value)
		fill(img, image.Rect(x0, y+6, max(xe, x0+2), y+rowH-6), c)
		val := "0"
		if b.Value > 0 {
			val = trimFloat(b.Value) + "×"
		}
		text(img, max(xe, x0+2)+6, y+rowH/2-7, val, colText, scale)
		if b.Target > 0 {
			xt := xOf(b.Target)
			fill(img, image.Rect(xt-1, y+1, xt+2, y+rowH-1), colTarget)
		}
	}
	// Legend.
	ly := top + rowH*len(bars) + 34
	lx := marginL
	for _, l := range []struct {
		c    color.RGBA
		name string
	}{{colNF, "nix-frontend"}, {colBase, "baseline Dockerfile"}, {colTarget, "target"}} {
		fill(img, image.Rect(lx, ly, lx+24, ly+14), l.c)
		text(img, lx+32, ly, l.name, colText, scale)
		lx += 32 + textWidth(l.name, scale) + 40
	}
	text(img, marginL, ly+30, "log scale; lower is better; ratios of one run on one buildkitd", colOne, 1)

	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
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

func fill(img *image.RGBA, r image.Rectangle, c color.RGBA) {
	r = r.Intersect(img.Bounds())
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			img.SetRGBA(x, y, c)
		}
	}
}

func textWidth(s string, scale int) int { return len([]rune(s)) * 6 * scale }

// text draws s in the 5×7 font, upper case, at (x, y), each font pixel
// scale×scale.
func text(img *image.RGBA, x, y int, s string, c color.RGBA, scale int) {
	for _, r := range strings.ToUpper(s) {
		g, ok := font[r]
		if !ok {
			g = font['?']
		}
		for row, bits := range g {
			for col := 0; col < 5; col++ {
				if bits[col] == '#' {
					fill(img, image.Rect(x+col*scale, y+row*scale, x+(col+1)*scale, y+(row+1)*scale), c)
				}
			}
		}
		x += 6 * scale
	}
}

var font = map[rune][7]string{
	' ':  {".....", ".....", ".....", ".....", ".....", ".....", "....."},
	'A':  {".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"},
	'B':  {"####.", "#...#", "#...#", "####.", "#...#", "#...#", "####."},
	'C':  {".###.", "#...#", "#....", "#....", "#....", "#...#", ".###."},
	'D':  {"####.", "#...#", "#...#", "#...#", "#...#", "#...#", "####."},
	'E':  {"#####", "#....", "#....", "####.", "#....", "#....", "#####"},
	'F':  {"#####", "#....", "#....", "####.", "#....", "#....", "#...."},
	'G':  {".###.", "#...#", "#....", "#.###", "#...#", "#...#", ".####"},
	'H':  {"#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"},
	'I':  {".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."},
	'J':  {"..###", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##.."},
	'K':  {"#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#"},
	'L':  {"#....", "#....", "#....", "#....", "#....", "#....", "#####"},
	'M':  {"#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#"},
	'N':  {"#...#", "#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#"},
	'O':  {".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."},
	'P':  {"####.", "#...#", "#...#", "####.", "#....", "#....", "#...."},
	'Q':  {".###.", "#...#", "#...#", "#...#", "#.#.#", "#..#.", ".##.#"},
	'R':  {"####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#"},
	'S':  {".####", "#....", "#....", ".###.", "....#", "....#", "####."},
	'T':  {"#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."},
	'U':  {"#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."},
	'V':  {"#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#.."},
	'W':  {"#...#", "#...#", "#...#", "#.#.#", "#.#.#", "#.#.#", ".#.#."},
	'X':  {"#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#"},
	'Y':  {"#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#.."},
	'Z':  {"#####", "....#", "...#.", "..#..", ".#...", "#....", "#####"},
	'0':  {".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."},
	'1':  {"..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."},
	'2':  {".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"},
	'3':  {"#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."},
	'4':  {"...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."},
	'5':  {"#####", "#....", "####.", "....#", "....#", "#...#", ".###."},
	'6':  {"..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."},
	'7':  {"#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."},
	'8':  {".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."},
	'9':  {".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."},
	'.':  {".....", ".....", ".....", ".....", ".....", ".##..", ".##.."},
	',':  {".....", ".....", ".....", ".....", ".##..", "..#..", ".#..."},
	':':  {".....", ".##..", ".##..", ".....", ".##..", ".##..", "....."},
	';':  {".....", ".##..", ".##..", ".....", ".##..", "..#..", ".#..."},
	'%':  {"##...", "##..#", "...#.", "..#..", ".#...", "#..##", "...##"},
	'/':  {".....", "....#", "...#.", "..#..", ".#...", "#....", "....."},
	'(':  {"...#.", "..#..", ".#...", ".#...", ".#...", "..#..", "...#."},
	')':  {".#...", "..#..", "...#.", "...#.", "...#.", "..#..", ".#..."},
	'-':  {".....", ".....", ".....", "#####", ".....", ".....", "....."},
	'+':  {".....", "..#..", "..#..", "#####", "..#..", "..#..", "....."},
	'=':  {".....", ".....", "#####", ".....", "#####", ".....", "....."},
	'<':  {"...#.", "..#..", ".#...", "#....", ".#...", "..#..", "...#."},
	'>':  {".#...", "..#..", "...#.", "....#", "...#.", "..#..", ".#..."},
	'|':  {"..#..", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."},
	'#':  {".#.#.", ".#.#.", "#####", ".#.#.", "#####", ".#.#.", ".#.#."},
	'?':  {".###.", "#...#", "....#", "...#.", "..#..", ".....", "..#.."},
	'\'': {"..#..", "..#..", ".#...", ".....", ".....", ".....", "....."},
	'×':  {".....", ".....", "#...#", ".#.#.", "..#..", ".#.#.", "#...#"},
	'≤':  {"...#.", "..#..", ".#...", "..#..", "...#.", ".....", ".####"},
}
