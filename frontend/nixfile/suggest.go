package nixfile

import (
	"sort"
	"strings"
)

// closest returns the option nearest to word for a "did you mean" hint.
// Unlike BuildKit's suggest package it counts a swap of two neighbouring
// letters as one edit, so a typo like RNU finds RUN rather than an equally
// distant ENV, and it breaks ties the same way on every run. The match keeps
// the casing the user typed in.
func closest(word string, options []string) (string, bool) {
	w := strings.ToLower(word)
	sorted := append([]string(nil), options...)
	sort.Strings(sorted)
	best, bestDist := "", 3 // more than two edits is a different word
	for _, o := range sorted {
		lo := strings.ToLower(o)
		if lo == w {
			return "", false
		}
		if d := osaDistance(w, lo); d < bestDist {
			best, bestDist = o, d
		}
	}
	if best == "" {
		return "", false
	}
	if word == strings.ToLower(word) {
		best = strings.ToLower(best)
	} else if word == strings.ToUpper(word) {
		best = strings.ToUpper(best)
	}
	return best, true
}

// osaDistance is the optimal string alignment distance: insertions,
// deletions, substitutions and transpositions of adjacent runes.
func osaDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	if len(ra) > 64 || len(rb) > 64 {
		// Far too long to be a typo of a keyword; skip the quadratic work.
		return 1 << 30
	}
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}
