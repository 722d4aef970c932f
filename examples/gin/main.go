// Command gin mounts mfakit on a gin-gonic/gin engine: a route group under
// /mfa with gin's middleware. gin keeps path parameters in its Context, so
// the adapter copies them into r.SetPathValue for the kit's handlers.
//
//	go run ./examples/gin   # then: curl -H 'Authorization: Bearer alice-token' localhost:8082/mfa/oauth/users/mfaDetails
package main

import (
	"flag"
	"log"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/mfakit/mfakit/examples/internal/exampleapp"
)

// wrap serves an http.Handler from gin, passing gin's path parameters on.
// gin matches on the decoded path (UseRawPath is off), so they are decoded
// already, as net/http's ServeMux decodes them; decoding them again would
// turn a user "a%40b" into "a@b". (An encoded "/" splits a segment there,
// so /users/a%2Fb/... finds no route: 404, not another user.)
func wrap(h http.Handler) gin.HandlerFunc {
	return func(c *gin.Context) {
		for _, p := range c.Params {
			c.Request.SetPathValue(p.Key, p.Value)
		}
		h.ServeHTTP(c.Writer, c.Request)
	}
}

func newRouter() (http.Handler, error) {
	api, err := exampleapp.NewAPI()
	if err != nil {
		return nil, err
	}
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(gin.Recovery())
	r.GET("/", func(c *gin.Context) { c.String(http.StatusOK, "the host app\n") })
	mfa := r.Group("/mfa")
	for _, rt := range api.Routes() {
		for _, path := range rt.Paths {
			mfa.Any(exampleapp.ColonPath(path), wrap(rt.Handler)) // the kit answers a wrong method with 405
		}
	}
	return r, nil
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8082", "listen address")
	flag.Parse()
	h, err := newRouter()
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("gin example on http://%s/mfa (tokens: alice-token, admin-token)", *addr)
	log.Fatal(http.ListenAndServe(*addr, h))
}
