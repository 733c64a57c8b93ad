package trace_test

import (
	"testing"

	"github.com/mesp-project/mesp/internal/fixture"
	"github.com/mesp-project/mesp/trace"
)

// The split is one rule on both sides: Go's IsTest and IsValidation agree
// with Python's contract.is_test and is_validation on every fixture id.
func TestSplitAgreesWithPython(t *testing.T) {
	var ids []string
	for _, f := range fixture.Rows(t) {
		ids = append(ids, f.ID)
	}
	var py [][2]bool
	fixture.RunPython(t, ids, &py, "-c", `import json, sys
from mesp_training.contract import is_test, is_validation
print(json.dumps([[is_test(i), is_validation(i)] for i in json.load(sys.stdin)]))`)
	if len(py) != len(ids) {
		t.Fatalf("python: %d answers for %d ids", len(py), len(ids))
	}
	var val int
	for i, id := range ids {
		if trace.IsTest(id) != py[i][0] || trace.IsValidation(id) != py[i][1] {
			t.Errorf("%s: Go test=%v validation=%v, Python %v", id, trace.IsTest(id), trace.IsValidation(id), py[i])
		}
		if trace.IsValidation(id) {
			val++
		}
		if want := !py[i][0] && py[i][1]; trace.Validation.Contains(id) != want {
			t.Errorf("%s: in the validation part %v, want %v", id, trace.Validation.Contains(id), want)
		}
	}
	if val == 0 || val == len(ids) {
		t.Fatalf("%d of %d fixture ids are validation: the test compares nothing", val, len(ids))
	}
}
