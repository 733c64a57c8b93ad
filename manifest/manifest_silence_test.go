package manifest

import (
	"strings"
	"testing"

	"github.com/mesp-project/mesp/silence"
)

func TestSilenceValidate(t *testing.T) {
	good := func() *Silence {
		return &Silence{Hazard: silence.Hazard{Bins: []silence.Bin{{Gap: 1, P: 0.3}, {Gap: 60, P: 0.01}}}, MinGap: 60}
	}
	cases := []struct {
		name string
		edit func(s *Silence)
		want string
	}{
		{"as fitted", func(*Silence) {}, ""},
		{"no bins", func(s *Silence) { s.Bins = nil }, "no hazard bins"},
		{"gaps out of order", func(s *Silence) { s.Bins[1].Gap = 1 }, "increasing gaps"},
		{"not a probability", func(s *Silence) { s.Bins[0].P = 1.2 }, "want a probability"},
		{"min gap 0", func(s *Silence) { s.MinGap = 0 }, "min_gap 0"},
	}
	for _, tc := range cases {
		sl := good()
		tc.edit(sl)
		m := Manifest{Silence: sl}
		err := m.validateSilence()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}
