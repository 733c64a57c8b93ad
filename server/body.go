package server

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/labstack/echo/v4"
)

// readBody reads a JSON request body into pooled memory, within two
// bounds checked while the bytes arrive, before anything is decoded:
// server.max_body_bytes for one request (413) and
// server.max_inflight_body_bytes for all requests being read or answered
// at once (503 + Retry-After; a request alone is always let through). Every
// route that takes a body reads it here, so one route cannot be the way
// around the other's bounds. Call release once the answer is written: the
// bytes stay reserved while their decoded form is in use.
func (s *Server) readBody(c echo.Context, mem *requestMemory) (release func(), err error) {
	mem.body.Reset()
	r := c.Request()
	if err := requireJSON(r); err != nil {
		return func() {}, err
	}
	// Reserve what the client announced only up to a small bound: a client
	// that announces 32 MiB and trickles bytes must not hold 32 MiB per
	// connection. Beyond it the buffer grows as bytes arrive (and a pooled
	// buffer keeps its capacity from earlier requests).
	if n := r.ContentLength; n > 0 && (s.opts.MaxBodyBytes <= 0 || n <= s.opts.MaxBodyBytes) {
		mem.body.Grow(int(min(n, announcedBodyReserve)) + bytes.MinRead) // ReadFrom wants MinRead free to read EOF without growing
	}
	br := &budgetReader{r: r.Body, s: s}
	release = func() { s.bodyBytes.Add(-br.held) }
	if _, err := mem.body.ReadFrom(br); err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			return release, echo.NewHTTPError(http.StatusRequestEntityTooLarge, fmt.Sprintf("body over %d bytes", mbe.Limit))
		case errors.Is(err, ErrOverloaded):
			return release, err
		}
		return release, echo.NewHTTPError(http.StatusBadRequest, "reading body").SetInternal(err)
	}
	return release, nil
}

// budgetReader reserves each byte read from the server's in-flight body
// budget.
type budgetReader struct {
	r    io.Reader
	s    *Server
	held int64
}

func (b *budgetReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if n > 0 {
		b.held += int64(n)
		now := b.s.bodyBytes.Add(int64(n))
		if limit := b.s.opts.MaxInflightBodyBytes; limit > 0 && now > limit && now != b.held {
			b.s.metrics.rejected.WithLabelValues("body_budget").Inc()
			return n, ErrOverloaded
		}
	}
	return n, err
}
