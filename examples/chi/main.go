// Command chi mounts mfakit on a go-chi/chi router: the kit's routes in a
// route group under /mfa, next to the host's own routes, with chi's
// middleware. chi fills r.PathValue from its URL parameters, but it
// matches on r.URL.RawPath when there is one, and then a parameter arrives
// still percent-encoded ("alice%40example.com"); decoded wraps each kit
// handler to decode them as net/http's ServeMux does, so the admin reset
// handler reads {username} as it does on net/http.
//
//	go run ./examples/chi   # then: curl -H 'Authorization: Bearer alice-token' localhost:8081/mfa/oauth/users/mfaDetails
package main

import (
	"flag"
	"log"
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/mfakit/mfakit/examples/internal/exampleapp"
	"github.com/mfakit/mfakit/httpx"
)

// decoded serves h with chi's URL parameters percent-decoded in
// r.PathValue (a malformed escape gets 400).
func decoded(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		params := chi.RouteContext(r.Context()).URLParams
		escaped := r.URL.RawPath != "" // chi routed on it
		for i, name := range params.Keys {
			if !exampleapp.SetPathValue(w, r, name, params.Values[i], escaped) {
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

func newRouter() (http.Handler, error) {
	api, err := exampleapp.NewAPI()
	if err != nil {
		return nil, err
	}
	r := chi.NewRouter()
	r.Use(middleware.Recoverer)
	r.Get("/", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("the host app\n")) })
	r.Route("/mfa", func(r chi.Router) {
		for _, rt := range api.Routes() {
			for _, path := range rt.Paths {
				r.Handle(path, decoded(rt.Handler)) // every method: the kit answers a wrong one with 405
			}
		}
		r.NotFound(httpx.NotFound(httpx.DefaultErrorHandler).ServeHTTP)
	})
	return r, nil
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8081", "listen address")
	flag.Parse()
	h, err := newRouter()
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("chi example on http://%s/mfa (tokens: alice-token, admin-token)", *addr)
	log.Fatal(http.ListenAndServe(*addr, h))
}
