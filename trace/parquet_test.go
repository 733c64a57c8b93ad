package trace

import (
	"compress/gzip"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/parquet-go/parquet-go"
)

func TestParquetRoundTrip(t *testing.T) {
	fns, err := ReadAll(filepath.Join(dataDir, "azure2019-invitro-dev-sample100.csv.gz"), Options{}, All)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "cluster-0.parquet")
	if err := WriteParquet(path, fns); err != nil {
		t.Fatal(err)
	}
	back, err := ReadParquet(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(back) != len(fns) {
		t.Fatalf("%d rows back, wrote %d", len(back), len(fns))
	}
	for i := range fns {
		if back[i].ID != fns[i].ID || len(back[i].Counts) != len(fns[i].Counts) {
			t.Fatalf("row %d: %s/%d vs %s/%d", i, back[i].ID, len(back[i].Counts), fns[i].ID, len(fns[i].Counts))
		}
		for m := range fns[i].Counts {
			if back[i].Counts[m] != fns[i].Counts[m] {
				t.Fatalf("row %d minute %d: %v vs %v", i, m, back[i].Counts[m], fns[i].Counts[m])
			}
		}
	}
	// No temp file is left behind, and a corrupt file is an error.
	if _, err := os.Stat(path + ".tmp"); !os.IsNotExist(err) {
		t.Error("temp file left behind")
	}
	os.WriteFile(path, []byte("PAR1 not really"), 0o644)
	if _, err := ReadParquet(path); err == nil {
		t.Error("corrupt Parquet read without error")
	}
}

// TestStreamedWritersRoundTrip: the CSV writer's output reads back through
// the one loader, and a Parquet file of several row groups reads back whole.
func TestStreamedWritersRoundTrip(t *testing.T) {
	fns, err := ReadAll(filepath.Join(dataDir, "azure2019-invitro-dev-sample100.csv.gz"), Options{}, All)
	if err != nil {
		t.Fatal(err)
	}
	// 25 copies: 2,500 rows, three Parquet row groups of 1,024.
	var many []Function
	for c := range 25 {
		for _, f := range fns {
			f.ID = fmt.Sprintf("%s-%d", f.ID, c)
			many = append(many, f)
		}
	}
	many[7].App = `odd,"app"`
	dir := t.TempDir()
	csvPath := filepath.Join(dir, "aug.csv.gz")
	f, _ := os.Create(csvPath)
	gz := gzip.NewWriter(f)
	w, err := NewCSVWriter(gz, MinutesPerDay)
	if err != nil {
		t.Fatal(err)
	}
	for _, fn := range many {
		if err := w.Write(fn); err != nil {
			t.Fatal(err)
		}
	}
	if err := errors.Join(w.Flush(), gz.Close(), f.Close()); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(Function{ID: "short", Counts: []float64{1}}); err == nil {
		t.Error("a row of 1 count written under a 1440-minute header")
	}
	pqPath := filepath.Join(dir, "cluster-0.parquet")
	if err := WriteParquet(pqPath, many); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(pqPath); err != nil {
		t.Fatal(err)
	} else if pf, err := os.Open(pqPath); err != nil {
		t.Fatal(err)
	} else {
		defer pf.Close()
		file, err := parquet.OpenFile(pf, st.Size())
		if err != nil {
			t.Fatal(err)
		}
		if n := len(file.RowGroups()); n != 3 {
			t.Errorf("%d row groups, want 3 of at most %d rows", n, parquetRowGroup)
		}
	}
	fromCSV, err := ReadAll(csvPath, Options{}, All)
	if err != nil {
		t.Fatal(err)
	}
	fromParquet, err := ReadParquet(pqPath)
	if err != nil {
		t.Fatal(err)
	}
	for name, back := range map[string][]Function{"csv": fromCSV, "parquet": fromParquet} {
		if len(back) != len(many) {
			t.Fatalf("%s: %d rows back, wrote %d", name, len(back), len(many))
		}
		for i := range many {
			if back[i].ID != many[i].ID || !slices.Equal(back[i].Counts, many[i].Counts) {
				t.Fatalf("%s: row %d differs", name, i)
			}
		}
	}
	// The middle row alone, from the third row group.
	mid, err := ReadParquetMiddleRow(pqPath)
	if err != nil {
		t.Fatal(err)
	}
	if want := many[len(many)/2]; mid.ID != want.ID || !slices.Equal(mid.Counts, want.Counts) {
		t.Errorf("middle row %s, want %s", mid.ID, want.ID)
	}
	if fromCSV[7].App != many[7].App {
		t.Errorf("quoted app %q back as %q", many[7].App, fromCSV[7].App)
	}
}
