package trace

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// Part selects one side of the fixed train/test split.
//
// The split is a pure function of the HashFunction id: the first 8 bytes of
// sha256(id), read big-endian, modulo 100; below TestPercent means test.
// It never changes, so every step (clustering, training, the search,
// evaluation) agrees on which functions are held out.
type Part int

const (
	All Part = iota
	Train
	Test
	// Validation is the training part's held-out validation functions
	// (IsValidation): for judging serving decisions as served, never the
	// test part.
	Validation
)

// TestPercent is the share of functions in the test part.
const TestPercent = 20

// IsTest reports whether a function id belongs to the held-out test part.
func IsTest(id string) bool {
	h := sha256.Sum256([]byte(id))
	return binary.BigEndian.Uint64(h[:8])%100 < TestPercent
}

// ValidationPercent is the share of the training part held out for
// validation (model selection, thresholds, calibration checks).
const ValidationPercent = 20

// IsValidation reports whether a training function is held out for
// validation: the next 8 bytes of sha256(id), modulo 100, below
// ValidationPercent. Python's contract.is_validation is the same rule.
func IsValidation(id string) bool {
	h := sha256.Sum256([]byte(id))
	return binary.BigEndian.Uint64(h[8:16])%100 < ValidationPercent
}

// Contains reports whether id is in this part.
func (p Part) Contains(id string) bool {
	switch p {
	case Train:
		return !IsTest(id)
	case Test:
		return IsTest(id)
	case Validation:
		return !IsTest(id) && IsValidation(id)
	default:
		return true
	}
}

func (p Part) String() string {
	return [...]string{"all", "train", "test", "validation"}[p]
}

// ParsePart reads "all", "train" or "test".
func ParsePart(s string) (Part, error) {
	switch s {
	case "", "all":
		return All, nil
	case "train":
		return Train, nil
	case "test":
		return Test, nil
	case "validation":
		return Validation, nil
	}
	return All, fmt.Errorf("trace: unknown split part %q (want all, train, test or validation)", s)
}
