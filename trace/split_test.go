package trace

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The split is one rule on both sides: Go's IsTest and IsValidation agree
// with Python's contract.is_test and is_validation on every fixture id.
func TestSplitAgreesWithPython(t *testing.T) {
	python := os.Getenv("MESP_PYTHON")
	if python == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("MESP_PYTHON is not set (make test sets it)")
		}
		t.Skip("MESP_PYTHON not set: run through make test")
	}
	fns, err := ReadAll(filepath.Join("..", "..", "shared", "data", "azure2019-invitro-dev-sample100.csv.gz"), Options{}, All)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(fns))
	for i, f := range fns {
		ids[i] = f.ID
	}
	in, _ := json.Marshal(ids)
	cmd := exec.Command(python, "-c", `import json, sys
from mesp_training.contract import is_test, is_validation
print(json.dumps([[is_test(i), is_validation(i)] for i in json.load(sys.stdin)]))`)
	cmd.Env = append(os.Environ(), "PYTHONPATH=../training")
	cmd.Stdin = strings.NewReader(string(in))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v", err)
	}
	var py [][2]bool
	if err := json.Unmarshal(out, &py); err != nil || len(py) != len(ids) {
		t.Fatalf("python: %d answers for %d ids (%v)", len(py), len(ids), err)
	}
	var val int
	for i, id := range ids {
		if IsTest(id) != py[i][0] || IsValidation(id) != py[i][1] {
			t.Errorf("%s: Go test=%v validation=%v, Python %v", id, IsTest(id), IsValidation(id), py[i])
		}
		if IsValidation(id) {
			val++
		}
	}
	if val == 0 || val == len(ids) {
		t.Fatalf("%d of %d fixture ids are validation: the test compares nothing", val, len(ids))
	}
}
