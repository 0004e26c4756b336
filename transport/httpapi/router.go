package httpapi

import "net/http"

// router is the API's ServeMux, keeping the patterns it was given, so that
// a test can hold the API reference (docs/api.md) to the routes.
type router struct {
	*http.ServeMux
	patterns []string
}

func newRouter() *router { return &router{ServeMux: http.NewServeMux()} }

// HandleFunc registers a route, as ServeMux does, and remembers it.
func (m *router) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request)) {
	m.patterns = append(m.patterns, pattern)
	m.ServeMux.HandleFunc(pattern, h)
}

// Handle registers a route, as ServeMux does, and remembers it.
func (m *router) Handle(pattern string, h http.Handler) {
	m.patterns = append(m.patterns, pattern)
	m.ServeMux.Handle(pattern, h)
}
