package fft

import "math"

// complexPlan is a forward DFT of one length n = product of radices 2, 3,
// 4 and 5, as a Stockham decimation-in-frequency transform: each stage
// reads one buffer and writes the other in natural order, so no bit
// reversal pass is needed.
type complexPlan struct {
	n      int
	stages []stage
}

// stage is one radix-p pass over sub-transforms of length p*m with stride
// s; tw[j*(p-1)+t-1] is the twiddle w^(j*t), w = e^{-2 pi i/(p*m)}.
type stage struct {
	p, m, s int
	tw      []complex128
}

func newComplexPlan(n int) *complexPlan {
	c := &complexPlan{n: n}
	rest, s := n, 1
	for rest > 1 {
		p := 5
		switch {
		case rest%4 == 0:
			p = 4
		case rest%2 == 0:
			p = 2
		case rest%3 == 0:
			p = 3
		}
		m := rest / p
		st := stage{p: p, m: m, s: s, tw: make([]complex128, m*(p-1))}
		for j := range m {
			for t := 1; t < p; t++ {
				st.tw[j*(p-1)+t-1] = root(j*t, rest)
			}
		}
		c.stages = append(c.stages, st)
		rest, s = m, s*p
	}
	return c
}

// forward transforms x in place using y as scratch and returns the slice
// holding the result (x or y).
func (c *complexPlan) forward(x, y []complex128) []complex128 {
	for i := range c.stages {
		st := &c.stages[i]
		switch st.p {
		case 2:
			radix2(st, x, y)
		case 3:
			radix3(st, x, y)
		case 4:
			radix4(st, x, y)
		default:
			radix5(st, x, y)
		}
		x, y = y, x
	}
	return x
}

// scale is z * c for real c, without the cross terms of a complex product.
func scale(z complex128, c float64) complex128 { return complex(real(z)*c, imag(z)*c) }

// mulNegI is z * (-i).
func mulNegI(z complex128) complex128 { return complex(imag(z), -real(z)) }

func radix2(st *stage, x, y []complex128) {
	m, s := st.m, st.s
	for j := range m {
		w := st.tw[j]
		a0, a1 := x[s*j:s*j+s], x[s*(j+m):s*(j+m)+s]
		y0, y1 := y[s*2*j:s*2*j+s], y[s*(2*j+1):s*(2*j+1)+s]
		for q, a := range a0 {
			b := a1[q]
			y0[q] = a + b
			y1[q] = (a - b) * w
		}
	}
}

var (
	sin3  = math.Sqrt(3) / 2
	cos5a = math.Cos(2 * math.Pi / 5)
	cos5b = math.Cos(4 * math.Pi / 5)
	sin5a = math.Sin(2 * math.Pi / 5)
	sin5b = math.Sin(4 * math.Pi / 5)
)

func radix3(st *stage, x, y []complex128) {
	m, s := st.m, st.s
	for j := range m {
		w1, w2 := st.tw[2*j], st.tw[2*j+1]
		x0, x1, x2 := x[s*j:s*j+s], x[s*(j+m):s*(j+m)+s], x[s*(j+2*m):s*(j+2*m)+s]
		o := s * 3 * j
		y0, y1, y2 := y[o:o+s], y[o+s:o+2*s], y[o+2*s:o+3*s]
		x1, x2 = x1[:len(x0)], x2[:len(x0)]
		y0, y1, y2 = y0[:len(x0)], y1[:len(x0)], y2[:len(x0)]
		for q, a0 := range x0 {
			a1, a2 := x1[q], x2[q]
			t1 := a1 + a2
			t2 := a0 - scale(t1, 0.5)
			d := a1 - a2
			t3 := complex(imag(d)*sin3, -real(d)*sin3) // (a1 - a2) * (-i sqrt3/2)
			y0[q] = a0 + t1
			y1[q] = (t2 + t3) * w1
			y2[q] = (t2 - t3) * w2
		}
	}
}

func radix4(st *stage, x, y []complex128) {
	m, s := st.m, st.s
	if s == 1 {
		radix4First(st, x, y)
		return
	}
	for j := range m {
		w1, w2, w3 := st.tw[3*j], st.tw[3*j+1], st.tw[3*j+2]
		x0, x1, x2, x3 := x[s*j:s*j+s], x[s*(j+m):s*(j+m)+s], x[s*(j+2*m):s*(j+2*m)+s], x[s*(j+3*m):s*(j+3*m)+s]
		o := s * 4 * j
		y0, y1, y2, y3 := y[o:o+s], y[o+s:o+2*s], y[o+2*s:o+3*s], y[o+3*s:o+4*s]
		x1, x2, x3 = x1[:len(x0)], x2[:len(x0)], x3[:len(x0)]
		y0, y1, y2, y3 = y0[:len(x0)], y1[:len(x0)], y2[:len(x0)], y3[:len(x0)]
		for q, a0 := range x0 {
			a1, a2, a3 := x1[q], x2[q], x3[q]
			t0, t1 := a0+a2, a0-a2
			t2, t3 := a1+a3, mulNegI(a1-a3)
			y0[q] = t0 + t2
			y1[q] = (t1 + t3) * w1
			y2[q] = (t0 - t2) * w2
			y3[q] = (t1 - t3) * w3
		}
	}
}

// radix4First is radix4 for the first stage (stride 1), where the
// general loop would build eight one-element slices per butterfly.
func radix4First(st *stage, x, y []complex128) {
	m := st.m
	x0, x1, x2, x3 := x[:m], x[m:2*m], x[2*m:3*m], x[3*m:4*m]
	y = y[:4*m]
	tw := st.tw[:3*m]
	for j, a0 := range x0 {
		a1, a2, a3 := x1[j], x2[j], x3[j]
		t0, t1 := a0+a2, a0-a2
		t2, t3 := a1+a3, mulNegI(a1-a3)
		w := tw[3*j : 3*j+3]
		o := y[4*j : 4*j+4]
		o[0] = t0 + t2
		o[1] = (t1 + t3) * w[0]
		o[2] = (t0 - t2) * w[1]
		o[3] = (t1 - t3) * w[2]
	}
}

func radix5(st *stage, x, y []complex128) {
	m, s := st.m, st.s
	for j := range m {
		w := st.tw[4*j : 4*j+4]
		x0, x1, x2 := x[s*j:s*j+s], x[s*(j+m):s*(j+m)+s], x[s*(j+2*m):s*(j+2*m)+s]
		x3, x4 := x[s*(j+3*m):s*(j+3*m)+s], x[s*(j+4*m):s*(j+4*m)+s]
		o := s * 5 * j
		y0, y1, y2, y3, y4 := y[o:o+s], y[o+s:o+2*s], y[o+2*s:o+3*s], y[o+3*s:o+4*s], y[o+4*s:o+5*s]
		x1, x2, x3, x4 = x1[:len(x0)], x2[:len(x0)], x3[:len(x0)], x4[:len(x0)]
		y0, y1, y2, y3, y4 = y0[:len(x0)], y1[:len(x0)], y2[:len(x0)], y3[:len(x0)], y4[:len(x0)]
		for q, a0 := range x0 {
			a1, a2, a3, a4 := x1[q], x2[q], x3[q], x4[q]
			t1, t2 := a1+a4, a2+a3
			t3, t4 := a1-a4, a2-a3
			u1 := a0 + scale(t1, cos5a) + scale(t2, cos5b)
			u2 := a0 + scale(t1, cos5b) + scale(t2, cos5a)
			v1 := mulNegI(scale(t3, sin5a) + scale(t4, sin5b))
			v2 := mulNegI(scale(t3, sin5b) - scale(t4, sin5a))
			y0[q] = a0 + t1 + t2
			y1[q] = (u1 + v1) * w[0]
			y2[q] = (u2 + v2) * w[1]
			y3[q] = (u2 - v2) * w[2]
			y4[q] = (u1 - v1) * w[3]
		}
	}
}
