package httpx

import (
	_ "embed"
	"net/http"
)

//go:embed openapi.yaml
var openAPI []byte

// OpenAPI returns the OpenAPI 3.1 document (YAML) of every route the kit
// serves, for hosts that publish it or generate clients from it.
func OpenAPI() []byte { return append([]byte(nil), openAPI...) }

// OpenAPIHandler serves the document as application/yaml.
func OpenAPIHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		w.Write(openAPI)
	})
}
