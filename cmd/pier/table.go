package main

import (
	"io"
	"strings"
	"unicode"

	"golang.org/x/text/width"
)

// table writes aligned columns, two spaces apart. Unlike text/tabwriter,
// which counts runes, it measures what a terminal shows: East Asian wide
// and fullwidth characters take two columns, combining marks none, so a
// name such as 製品.jar does not push its row out of line.
type table struct {
	rows [][]string
}

func newTable(header ...string) *table { return &table{rows: [][]string{header}} }

// row adds one line; cells beyond the header's count are kept too.
func (t *table) row(cells ...string) { t.rows = append(t.rows, cells) }

// write prints the table; the last column is not padded.
func (t *table) write(w io.Writer) error {
	var widths []int
	for _, r := range t.rows {
		for i, cell := range r {
			if i >= len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], displayWidth(cell))
		}
	}
	var b strings.Builder
	for _, r := range t.rows {
		for i, cell := range r {
			b.WriteString(cell)
			if i < len(r)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-displayWidth(cell)+2))
			}
		}
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// displayWidth is the number of terminal columns s takes.
func displayWidth(s string) int {
	n := 0
	for _, r := range s {
		switch {
		case unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf):
			// combining marks and format characters take no column
		default:
			switch width.LookupRune(r).Kind() {
			case width.EastAsianWide, width.EastAsianFullwidth:
				n += 2
			default:
				n++
			}
		}
	}
	return n
}
