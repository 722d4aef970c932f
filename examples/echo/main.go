// Command echo mounts mfakit on a labstack/echo (v4) server: a group under
// /mfa with echo's middleware. echo keeps path parameters in its Context,
// matched on r.URL.RawPath when there is one, and then still
// percent-encoded; the adapter decodes them into r.SetPathValue for the
// kit's handlers.
//
//	go run ./examples/echo   # then: curl -H 'Authorization: Bearer alice-token' localhost:8083/mfa/oauth/users/mfaDetails
package main

import (
	"flag"
	"log"
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/mfakit/mfakit/examples/internal/exampleapp"
)

// wrap serves an http.Handler from echo, passing echo's path parameters
// on, percent-decoded (a malformed escape gets 400).
func wrap(h http.Handler) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		values := c.ParamValues()
		escaped := r.URL.RawPath != "" // echo routed on it
		for i, name := range c.ParamNames() {
			if !exampleapp.SetPathValue(c.Response(), r, name, values[i], escaped) {
				return nil
			}
		}
		h.ServeHTTP(c.Response(), r)
		return nil
	}
}

func newServer() (*echo.Echo, error) {
	api, err := exampleapp.NewAPI()
	if err != nil {
		return nil, err
	}
	e := echo.New()
	e.HideBanner = true
	e.Use(middleware.Recover())
	e.GET("/", func(c echo.Context) error { return c.String(http.StatusOK, "the host app\n") })
	g := e.Group("/mfa")
	for _, rt := range api.Routes() {
		for _, path := range rt.Paths {
			g.Any(exampleapp.ColonPath(path), wrap(rt.Handler)) // the kit answers a wrong method with 405
		}
	}
	return e, nil
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8083", "listen address")
	flag.Parse()
	e, err := newServer()
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("echo example on http://%s/mfa (tokens: alice-token, admin-token)", *addr)
	log.Fatal(e.Start(*addr))
}
