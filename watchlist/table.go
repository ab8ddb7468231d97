package watchlist

import (
	"io"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode/utf8"

	"golang.org/x/term"
)

// table prints aligned columns for a person to read.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, header ...string) *table {
	t := &table{tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	t.row(header...)
	return t
}

func (t *table) row(cells ...string) {
	for i, c := range cells {
		cells[i] = cellText(c)
	}
	io.WriteString(t.tw, strings.Join(cells, "\t")+"\n")
}

// cellText is c on one line: a tab or newline in a name would break the
// columns.
func cellText(c string) string {
	return strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, c)
}

func (t *table) flush() { t.tw.Flush() }

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// termWidth is the width a table printed on w must fit: the terminal's,
// else $COLUMNS, else 100 (a pipe or a file read later on some screen).
func termWidth(w io.Writer) int {
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		if cols, _, err := term.GetSize(int(f.Fd())); err == nil && cols > 0 {
			return cols
		}
	}
	if n, err := strconv.Atoi(os.Getenv("COLUMNS")); err == nil && n > 0 {
		return n
	}
	return 100
}

// fitTable prints rows (the header first) in columns two spaces apart on
// lines at most width wide where it can. The cells of the columns in cut
// give way, the widest column first and none below its header (or 8),
// shortened with "…" at their end, or at their start for the columns in
// keepEnd (whose end says more). The last column, the one worth reading
// whole, is wrapped: in its own column while that leaves it minLast
// characters, else on lines of their own under its row, indented. It
// tells whether a cell was shortened.
func fitTable(w io.Writer, width int, rows [][]string, cut, keepEnd []int) bool {
	const gap, minLast, indent = 2, 30, 5
	if len(rows) == 0 {
		return false
	}
	last := len(rows[0]) - 1
	colw := make([]int, last)
	for _, r := range rows {
		for i := range colw {
			colw[i] = max(colw[i], utf8.RuneCountInString(r[i]))
		}
	}
	lead := func() int { // where the last column starts
		n := 0
		for _, x := range colw {
			n += x + gap
		}
		return n
	}
	full := slices.Clone(colw)
	shrink := func(room int) { // until the last column starts room before width
		for lead()+room > width {
			widest := -1
			for _, i := range append(cut, keepEnd...) {
				if colw[i] > max(utf8.RuneCountInString(rows[0][i]), 8) && (widest < 0 || colw[i] > colw[widest]) {
					widest = i
				}
			}
			if widest < 0 {
				return
			}
			colw[widest]--
		}
	}
	shrink(minLast)
	under := lead()+minLast > width // the last column on lines of its own
	if under {
		// Only as much as the row's own line needs.
		copy(colw, full)
		shrink(gap)
	}
	lastw := width - lead()
	if under {
		lastw = max(width-indent, minLast)
	}
	shortened := false
	var b strings.Builder
	for k, r := range rows {
		b.Reset()
		for i, x := range colw {
			c := []rune(r[i])
			if len(c) > x {
				if slices.Contains(keepEnd, i) {
					c = append([]rune{'…'}, c[len(c)-x+1:]...)
				} else {
					c = append(c[:x-1], '…')
				}
				shortened = true
			}
			b.WriteString(string(c))
			b.WriteString(strings.Repeat(" ", x-len(c)+gap))
		}
		lines := wrapText(r[last], lastw)
		if under && k > 0 {
			io.WriteString(w, strings.TrimRight(b.String(), " ")+"\n")
			for _, l := range lines {
				io.WriteString(w, strings.Repeat(" ", indent)+l+"\n")
			}
			continue
		}
		if under { // the header: its last column's name on a line of its own too
			io.WriteString(w, strings.TrimRight(b.String(), " ")+"\n"+strings.Repeat(" ", indent)+r[last]+"\n")
			continue
		}
		io.WriteString(w, strings.TrimRight(b.String()+lines[0], " ")+"\n")
		for _, l := range lines[1:] {
			io.WriteString(w, strings.Repeat(" ", lead())+l+"\n")
		}
	}
	return shortened
}

// wrapText breaks s into lines of at most n characters, between words
// where it can.
func wrapText(s string, n int) []string {
	var lines []string
	line := []rune{}
	for _, word := range strings.Fields(s) {
		wr := []rune(word)
		if len(line) > 0 && len(line)+1+len(wr) > n {
			lines, line = append(lines, string(line)), line[:0:0]
		}
		if len(line) > 0 {
			line = append(line, ' ')
		}
		line = append(line, wr...)
		for len(line) > n {
			lines, line = append(lines, string(line[:n])), append([]rune{}, line[n:]...)
		}
	}
	return append(lines, string(line))
}
