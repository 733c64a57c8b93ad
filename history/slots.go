package history

import "math"

// slots are one ring's counts at the narrowest width that holds every one
// of them exactly: whole counts up to 255 in a byte, up to 65,535 in two
// bytes, any other (larger, or fractional as Prometheus' increase() gives)
// as a float32. Most minutes of most functions are zero or a few calls: a
// day at a byte a minute is 1,440 bytes where float32 took 5,760. A slot
// array widens, once, when a count does not fit; it never narrows (a day
// later the function may be busy again).
type slots struct {
	u8  []uint8
	u16 []uint16
	f32 []float32
}

func newSlots(n int) slots { return slots{u8: make([]uint8, n)} }

func (s *slots) get(i int) float32 {
	switch {
	case s.u8 != nil:
		return float32(s.u8[i])
	case s.u16 != nil:
		return float32(s.u16[i])
	}
	return s.f32[i]
}

func (s *slots) set(i int, v float32) {
	whole := v == float32(math.Trunc(float64(v)))
	switch {
	case s.u8 != nil && whole && v <= math.MaxUint8:
		s.u8[i] = uint8(v)
		return
	case s.u8 != nil && whole && v <= math.MaxUint16:
		s.u16 = make([]uint16, len(s.u8))
		for j, x := range s.u8 {
			s.u16[j] = uint16(x)
		}
		s.u8 = nil
	case s.u8 != nil:
		s.widen(len(s.u8))
	case s.u16 != nil && whole && v <= math.MaxUint16:
	case s.u16 != nil:
		s.widen(len(s.u16))
	}
	switch {
	case s.u16 != nil:
		s.u16[i] = uint16(v)
	default:
		s.f32[i] = v
	}
}

// widen moves every slot to float32.
func (s *slots) widen(n int) {
	s.f32 = make([]float32, n)
	for j := range n {
		s.f32[j] = s.get(j)
	}
	s.u8, s.u16 = nil, nil
}
