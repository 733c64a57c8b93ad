package history

import "testing"

func TestSlotsWidenOnlyWhenACountDoesNotFit(t *testing.T) {
	cases := []struct {
		name  string
		sets  []float32
		width string
	}{
		{"small whole counts: a byte", []float32{0, 3, 255}, "u8"},
		{"up to 65,535: two bytes", []float32{3, 256, 65535}, "u16"},
		{"a fraction: float32", []float32{3, 2.5}, "f32"},
		{"beyond two bytes: float32", []float32{3, 300, 65536}, "f32"},
		{"a fraction after two bytes", []float32{300, 0.25}, "f32"},
		{"1e9", []float32{1e9}, "f32"},
	}
	for _, tc := range cases {
		s := newSlots(8)
		for i, v := range tc.sets {
			s.set(i, v)
		}
		for i, v := range tc.sets {
			if got := s.get(i); got != v {
				t.Errorf("%s: slot %d = %v, want %v", tc.name, i, got, v)
			}
		}
		if s.get(7) != 0 {
			t.Errorf("%s: an unset slot is %v", tc.name, s.get(7))
		}
		width := map[bool]string{true: "u8"}[s.u8 != nil]
		if s.u16 != nil {
			width = "u16"
		}
		if s.f32 != nil {
			width = "f32"
		}
		if width != tc.width {
			t.Errorf("%s: width %s, want %s", tc.name, width, tc.width)
		}
		// setting a small count later never narrows, and keeps the others
		s.set(6, 1)
		if s.get(6) != 1 || s.get(0) != tc.sets[0] {
			t.Errorf("%s: after a small count: %v %v", tc.name, s.get(6), s.get(0))
		}
	}
}
