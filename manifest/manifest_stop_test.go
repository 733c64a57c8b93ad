package manifest_test

import (
	"errors"
	"testing"

	"github.com/mesp-project/mesp/internal/fixture"
	"github.com/mesp-project/mesp/manifest"
	"github.com/mesp-project/mesp/silence"
)

// TestReadManifestChecksTheStopModel: a set whose stop model cannot
// answer (a cycle in a tree, other inputs) does not read, so a reload
// keeps the set in service; the shipped one reads.
func TestReadManifestChecksTheStopModel(t *testing.T) {
	if _, err := manifest.ReadManifest(fixture.Models()); err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string]func(stop map[string]any){
		"a cycle":      func(s map[string]any) { s["trees"].([]any)[0].(map[string]any)["left_child"].([]any)[0] = 0.0 },
		"other inputs": func(s map[string]any) { s["features"] = []any{"logit_p"} },
		"no trees":     func(s map[string]any) { s["trees"] = []any{} },
	} {
		dir := fixture.CopyModels(t)
		fixture.EditManifest(t, dir, func(m map[string]any) {
			stop, ok := m["stop"].(map[string]any)
			if !ok {
				t.Skip("the shipped set has no stop model")
			}
			edit(stop)
		})
		if _, err := manifest.ReadManifest(dir); !errors.Is(err, silence.ErrStopModel) {
			t.Errorf("%s: %v, want silence.ErrStopModel", name, err)
		}
	}
}
