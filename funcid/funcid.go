// Package funcid says what a function id may be, once for every way one
// arrives (forecast and pre-warm bodies, pushes, KServe V2, the scaler's
// metadata, Prometheus labels), and how to quote one in a log or an error.
package funcid

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxLen is the longest id in bytes. Kubernetes names are at most 253
// bytes and a Prometheus label value naming a function is shorter still;
// without a bound, ids are memory an outside client chooses (600 ids of
// 1 MiB took the history store's process from 346 MB to 1.2 GB).
const MaxLen = 253

// quoteLen is how much of an id Short keeps.
const quoteLen = 64

// ErrInvalid marks an id that names no function.
var ErrInvalid = errors.New("bad function id")

// Validate refuses an id that is empty or blank, longer than MaxLen bytes,
// not UTF-8, or holds control characters (which would forge log lines).
func Validate(id string) error {
	switch {
	case strings.TrimSpace(id) == "":
		return fmt.Errorf("%w: %q is empty or blank", ErrInvalid, id)
	case len(id) > MaxLen:
		return fmt.Errorf("%w: %s is %d bytes, at most %d", ErrInvalid, Short(id), len(id), MaxLen)
	case !utf8.ValidString(id):
		return fmt.Errorf("%w: %s is not UTF-8", ErrInvalid, Short(id))
	case strings.ContainsFunc(id, unicode.IsControl):
		return fmt.Errorf("%w: %s holds a control character", ErrInvalid, Short(id))
	}
	return nil
}

// Short quotes an id for a log line or an error: whole when short, else
// its first bytes and its length, so that a hostile id costs the log no
// more than a short one.
func Short(id string) string {
	if len(id) <= quoteLen {
		return fmt.Sprintf("%q", id)
	}
	cut := quoteLen
	for cut > 0 && !utf8.RuneStart(id[cut]) {
		cut--
	}
	return fmt.Sprintf("%q... (%d bytes)", id[:cut], len(id))
}
