package trace

import (
	"os"
	"path/filepath"
	"testing"
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
