// Command fiber mounts mfakit on a gofiber/fiber (v2) app through fiber's
// net/http adaptor: a group under /mfa with fiber's middleware. Fiber runs
// on fasthttp, so the adaptor rebuilds an *http.Request; path parameters,
// which fiber matches on the raw path and so hands on still
// percent-encoded, are decoded into r.SetPathValue.
//
//	go run ./examples/fiber   # then: curl -H 'Authorization: Bearer alice-token' localhost:8084/mfa/oauth/users/mfaDetails
package main

import (
	"flag"
	"log"
	"net/http"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/gofiber/fiber/v2/middleware/recover"

	"github.com/mfakit/mfakit/examples/internal/exampleapp"
)

// wrap serves an http.Handler from fiber, passing the path parameters on,
// percent-decoded: fiber matches on the raw path, so they arrive encoded.
// A malformed escape gets 400 from here, as the adaptor cannot turn such
// a request into an *http.Request.
func wrap(h http.Handler) fiber.Handler {
	return func(c *fiber.Ctx) error {
		params := c.AllParams()
		for k, v := range params {
			decoded, p := exampleapp.DecodePathValue(k, v, true)
			if p != nil {
				c.Set("Cache-Control", "no-store")
				c.Set("X-Content-Type-Options", "nosniff")
				return c.Status(p.Status).JSON(p, "application/problem+json")
			}
			params[k] = decoded
		}
		return adaptor.HTTPHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			for k, v := range params {
				r.SetPathValue(k, v)
			}
			h.ServeHTTP(w, r)
		}))(c)
	}
}

func newApp() (*fiber.App, error) {
	api, err := exampleapp.NewAPI()
	if err != nil {
		return nil, err
	}
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Use(recover.New())
	app.Get("/", func(c *fiber.Ctx) error { return c.SendString("the host app\n") })
	g := app.Group("/mfa")
	for _, rt := range api.Routes() {
		for _, path := range rt.Paths {
			g.All(exampleapp.ColonPath(path), wrap(rt.Handler)) // the kit answers a wrong method with 405
		}
	}
	return app, nil
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8084", "listen address")
	flag.Parse()
	app, err := newApp()
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("fiber example on http://%s/mfa (tokens: alice-token, admin-token)", *addr)
	log.Fatal(app.Listen(*addr))
}
