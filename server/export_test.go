package server

import "github.com/labstack/echo/v4"

// Echo exposes the router to the tests (the route list of the OpenAPI test).
func (s *Server) Echo() *echo.Echo { return s.echo }
