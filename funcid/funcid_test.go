package funcid

import (
	"errors"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	cases := []struct {
		name string
		id   string
		ok   bool
	}{
		{"plain", "orders-api", true},
		{"unicode", "função", true},
		{"longest", strings.Repeat("a", MaxLen), true},
		{"empty", "", false},
		{"blank", " \t", false},
		{"one byte too long", strings.Repeat("a", MaxLen+1), false},
		{"a megabyte", strings.Repeat("x", 1<<20), false},
		{"newline forges a log line", "a\nlevel=ERROR", false},
		{"nul", "a\x00b", false},
		{"namespaced", "ns/fn", true},
		{"not utf-8", "a\xffb", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Validate(c.id)
			if (err == nil) != c.ok {
				t.Fatalf("Validate: %v, want ok %v", err, c.ok)
			}
			if err != nil {
				if !errors.Is(err, ErrInvalid) {
					t.Errorf("error %v is not ErrInvalid", err)
				}
				if len(err.Error()) > 200 {
					t.Errorf("error of %d bytes quotes the id whole", len(err.Error()))
				}
			}
		})
	}
}

func TestShort(t *testing.T) {
	if got := Short("fn"); got != `"fn"` {
		t.Errorf("Short(fn) = %s", got)
	}
	long := strings.Repeat("é", 1000) // 2 bytes a rune: the cut must not split one
	got := Short(long)
	if len(got) > quoteLen+40 || !strings.Contains(got, "(2000 bytes)") || strings.Contains(got, `\x`) {
		t.Errorf("Short(long) = %s", got)
	}
}
