package trace

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// CSVWriter streams functions in the Azure layout (the one Reader reads),
// for data made by MESP itself: augmented benchmark sets, test inputs.
type CSVWriter struct {
	w       *bufio.Writer
	minutes int
	buf     []byte
}

// NewCSVWriter writes the header for rows of minutes counts.
func NewCSVWriter(w io.Writer, minutes int) (*CSVWriter, error) {
	c := &CSVWriter{w: bufio.NewWriterSize(w, 1<<20), minutes: minutes}
	header := append([]string(nil), idColumns...)
	for m := 1; m <= minutes; m++ {
		header = append(header, strconv.Itoa(m))
	}
	if _, err := c.w.WriteString(strings.Join(header, ",") + "\n"); err != nil {
		return nil, fmt.Errorf("trace: %w", err)
	}
	return c, nil
}

// Write adds one row; its counts must number the header's minutes.
func (c *CSVWriter) Write(f Function) error {
	if len(f.Counts) != c.minutes {
		return fmt.Errorf("trace: %s has %d counts, want %d", f.ID, len(f.Counts), c.minutes)
	}
	b := c.buf[:0]
	for i, s := range []string{f.Owner, f.App, f.ID, f.Trigger} {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendCSVField(b, s)
	}
	for _, v := range f.Counts {
		b = append(b, ',')
		b = strconv.AppendFloat(b, v, 'f', -1, 64)
	}
	b = append(b, '\n')
	c.buf = b
	if _, err := c.w.Write(b); err != nil {
		return fmt.Errorf("trace: %w", err)
	}
	return nil
}

// Flush writes buffered rows through.
func (c *CSVWriter) Flush() error {
	if err := c.w.Flush(); err != nil {
		return fmt.Errorf("trace: %w", err)
	}
	return nil
}

// appendCSVField quotes s when it holds a separator, quote or line break.
func appendCSVField(b []byte, s string) []byte {
	if !strings.ContainsAny(s, ",\"\r\n") {
		return append(b, s...)
	}
	b = append(b, '"')
	b = append(b, strings.ReplaceAll(s, `"`, `""`)...)
	return append(b, '"')
}
