package clusterset

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/mesp-project/mesp/internal/fixture"
	"github.com/mesp-project/mesp/kshape"
	"github.com/mesp-project/mesp/trace"
)

// TestWriteRefusesChangedFile: the second pass over the file must
// meet the rows the clustering saw; if not, it fails and leaves nothing.
func TestWriteRefusesChangedFile(t *testing.T) {
	raw := fixture.Rows(t)
	ids := make([]string, len(raw))
	for i, f := range raw {
		ids[i] = f.ID
	}
	ids[40] = "not-in-the-file"
	res := &kshape.Result{Labels: make([]int, len(ids)), Distances: make([]float64, len(ids)), Centroids: [][]float64{make([]float64, 1440)}}
	out := t.TempDir()
	err := Write(context.Background(), out, fixture.Sample100, trace.Options{}, trace.All, Fit{IDs: ids, Length: 1440, Result: res, K: 1, Seed: 1})
	if err == nil || !strings.Contains(err.Error(), "changed while it was clustered") {
		t.Fatalf("err %v, want a changed-file error", err)
	}
	left, _ := os.ReadDir(out)
	for _, e := range left {
		t.Errorf("left behind: %s", e.Name())
	}
}
