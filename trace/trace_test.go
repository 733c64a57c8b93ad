package trace

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// dataDir is the real data, relative to this package's directory:
// ../shared/data beside the repository when it is there, else the copy
// the repository ships (as internal/fixture.DataDir; that package
// imports this one).
var dataDir = func() string {
	if st, err := os.Stat("../../shared/data"); err == nil && st.IsDir() {
		return "../../shared/data"
	}
	return "../data"
}()

func header(minutes int) string {
	cols := append([]string(nil), idColumns...)
	for i := 1; i <= minutes; i++ {
		cols = append(cols, strconv.Itoa(i))
	}
	return strings.Join(cols, ",")
}

func row(id string, vals ...string) string {
	counts := make([]string, MinutesPerDay)
	for i := range counts {
		counts[i] = "1"
	}
	copy(counts, vals)
	return id + "," + id + "," + id + ",http," + strings.Join(counts, ",")
}

func TestReaderErrors(t *testing.T) {
	good := row("a")
	cases := []struct {
		name    string
		body    string
		want    error
		line    int
		column  string
		skipped int // rows skipped with SkipBad (-1: fails even then)
	}{
		{"missing minute columns", header(1000) + "\n", ErrHeader, 1, "", -1},
		{"bad id header", strings.Replace(header(MinutesPerDay), "HashApp", "App", 1) + "\n", ErrHeader, 1, "", -1},
		{"non-numeric", header(MinutesPerDay) + "\n" + good + "\n" + row("b", "1", "x") + "\n", ErrNonNumeric, 3, "2", 1},
		{"negative", header(MinutesPerDay) + "\n" + row("b", "-3") + "\n" + good + "\n", ErrNegative, 2, "1", 1},
		{"NaN", header(MinutesPerDay) + "\n" + row("b", "1", "1", "NaN") + "\n", ErrNaN, 2, "3", 1},
		{"Inf", header(MinutesPerDay) + "\n" + row("b", "+Inf") + "\n", ErrNaN, 2, "1", 1},
		{"ragged", header(MinutesPerDay) + "\n" + good + "\n" + good + ",7\n", ErrRagged, 3, "", 1},
		{"empty id", header(MinutesPerDay) + "\n" + ",,,http," + strings.Repeat("0,", MinutesPerDay-1) + "0\n", ErrEmptyFileID, 2, "HashFunction", 1},
		{"empty file", "", ErrHeader, 1, "", -1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readString(tc.body, Options{})
			var pe *ParseError
			if !errors.As(err, &pe) || !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want ParseError wrapping %v", err, tc.want)
			}
			if pe.Line != tc.line || pe.Column != tc.column || pe.File != "mem.csv" {
				t.Errorf("at %s:%d column %q, want line %d column %q", pe.File, pe.Line, pe.Column, tc.line, tc.column)
			}
			rows, err := readString(tc.body, Options{SkipBad: true})
			if tc.skipped < 0 {
				if err == nil {
					t.Fatal("SkipBad must not hide a header error")
				}
				return
			}
			if err != nil {
				t.Fatalf("SkipBad: %v", err)
			}
			if got := strings.Count(tc.body, "\n") - 1 - len(rows); got != tc.skipped {
				t.Errorf("skipped %d rows, want %d", got, tc.skipped)
			}
		})
	}
}

func readString(body string, opts Options) ([]Function, error) {
	r, err := NewReader(strings.NewReader(body), "mem.csv", opts)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var out []Function
	for {
		f, err := r.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, f)
	}
}

func TestTruncatedGzip(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(dataDir, "azure2019-invitro-dev-sample100.csv.gz"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "cut.csv.gz")
	if err := os.WriteFile(path, raw[:len(raw)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	for _, skip := range []bool{false, true} {
		_, err = ReadAll(path, Options{SkipBad: skip}, All)
		if !errors.Is(err, ErrTruncated) {
			t.Errorf("SkipBad=%v: err = %v, want ErrTruncated", skip, err)
		}
	}
}

func TestFixtureAndGzipEqualPlain(t *testing.T) {
	path := filepath.Join(dataDir, "azure2019-invitro-dev-sample100.csv.gz")
	fns, err := ReadAll(path, Options{}, All)
	if err != nil {
		t.Fatal(err)
	}
	if len(fns) != 100 {
		t.Fatalf("%d rows, want 100", len(fns))
	}
	for _, f := range fns {
		if len(f.Counts) != MinutesPerDay {
			t.Fatalf("%s: %d minutes", f.ID, len(f.Counts))
		}
	}
	// The same content uncompressed reads the same.
	raw, _ := os.ReadFile(path)
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := io.ReadAll(zr)
	again, err := readString(string(plain), Options{})
	if err != nil || len(again) != 100 || again[57].ID != fns[57].ID || again[57].Counts[700] != fns[57].Counts[700] {
		t.Fatalf("plain read differs: %v", err)
	}
}

func TestSplitIsStableAndAboutOneFifth(t *testing.T) {
	path := filepath.Join(dataDir, "azure2019-invitro-dev.csv.gz")
	var n, test int
	_, err := Each(path, Options{}, func(f Function) error {
		n++
		if IsTest(f.ID) {
			test++
		}
		if Train.Contains(f.ID) == Test.Contains(f.ID) {
			t.Fatalf("%s in both or neither part", f.ID)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	share := float64(test) / float64(n)
	if n != 5125 || share < 0.17 || share > 0.23 {
		t.Fatalf("%d of %d functions in test (%.3f)", test, n, share)
	}
	// Pinned: the split must never change between releases, or a later
	// evaluation would score functions an earlier model trained on.
	if test != 989 {
		t.Fatalf("test part has %d functions; the documented split has 989", test)
	}
}

func TestReadDays(t *testing.T) {
	var paths []string
	for d := 1; d <= 14; d++ {
		paths = append(paths, filepath.Join(dataDir, "azure2019-1func-14days", "azure2019-d"+pad2(d)+".csv.gz"))
	}
	fns, err := ReadDays(paths, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(fns) != 1 || len(fns[0].Counts) != 14*MinutesPerDay {
		t.Fatalf("got %d functions", len(fns))
	}
	// Daily totals from the data README: day 1 is 16,118; day 14 is 820.
	sum := func(day int) (s float64) {
		for _, v := range fns[0].Counts[(day-1)*MinutesPerDay : day*MinutesPerDay] {
			s += v
		}
		return s
	}
	if sum(1) != 16118 || sum(14) != 820 {
		t.Fatalf("daily totals %v, %v; want 16118, 820", sum(1), sum(14))
	}
}

func pad2(d int) string {
	if d < 10 {
		return "0" + strconv.Itoa(d)
	}
	return strconv.Itoa(d)
}
