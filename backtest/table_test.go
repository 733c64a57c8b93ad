package backtest_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mesp-project/mesp/backtest"
	"github.com/mesp-project/mesp/internal/fixture"
)

// A peer's forecasts read from its CSV are scored on the rows they were
// made for; a CSV that misses a (function, origin) or holds something
// that is not a count forecast is refused.
func TestFromTable(t *testing.T) {
	fns := fixture.Rows(t)[:5]
	table := func(skip int, bad string) string {
		var b strings.Builder
		b.WriteString("function,origin")
		for h := range backtest.Horizon {
			fmt.Fprintf(&b, ",h%d", h+1)
		}
		b.WriteString("\n")
		row := 0
		for _, f := range fns {
			for _, o := range backtest.Origins {
				row++
				if row == skip {
					continue
				}
				fmt.Fprintf(&b, "%s,%d", f.ID, o)
				for h := range backtest.Horizon {
					v := fmt.Sprint(f.Counts[o+h]) // a perfect forecast
					if row == 3 && h == 7 && bad != "" {
						v = bad
					}
					b.WriteString("," + v)
				}
				b.WriteString("\n")
			}
		}
		return b.String()
	}
	complete := table(0, "")
	cases := []struct {
		name string
		csv  string
		err  string
	}{
		{"complete", complete, ""},
		{"a missing row", table(4, ""), "no row for function"},
		{"a row twice", complete + strings.SplitAfter(complete, "\n")[2], "given twice"},
		{"another header", strings.Replace(complete, "function,origin", "function,minute", 1), "header"},
		{"a negative value", table(0, "-1"), "h8"},
		{"NaN", table(0, "NaN"), "h8"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "peer.csv")
			if err := os.WriteFile(path, []byte(tc.csv), 0o644); err != nil {
				t.Fatal(err)
			}
			p, err := backtest.FromTable("peer", path, fns)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			res, err := backtest.Run(context.Background(), fns, []backtest.Forecaster{p}, "", nil)
			if err != nil {
				t.Fatal(err)
			}
			if m := res.Forecasters["peer"]; m.MAE != 0 || m.Pairs != len(fns)*len(backtest.Origins) {
				t.Fatalf("a perfect forecast read back scores %+v", m)
			}
			var bands int
			for _, v := range res.ByVolume {
				bands += v.Functions
			}
			if bands != len(fns) {
				t.Fatalf("volume bands hold %d of %d functions", bands, len(fns))
			}
		})
	}
}
