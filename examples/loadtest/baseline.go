package main

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// server is an HTTP server on a loopback listener.
type server struct {
	url string // "http://127.0.0.1:port"
	srv *http.Server
}

// serve serves h on a new loopback listener.
func serve(h http.Handler) (*server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return &server{url: "http://" + ln.Addr().String(), srv: srv}, nil
}

// close stops the server.
func (s *server) close() { s.srv.Close() }

// checkBody is the JSON body of a check (PUT verify).
type checkBody struct {
	MFAType string `json:"mfatype"`
	TOTP    string `json:"totp"`
}

// readBody decodes the JSON body of a request other than GET as the kit
// does (at most 4 KiB, an empty body allowed); false when it is not JSON.
func readBody(r *http.Request, body *checkBody) bool {
	if r.Method == http.MethodGet {
		return true
	}
	err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(body)
	return err == nil || errors.Is(err, io.EOF)
}

// baselineBody is the bare baseline's answer, and the database baseline's
// to a write.
const baselineBody = `{"availables":["AUTHENTICATOR","EMAIL"],"details":{}}`

// startBaseline serves the same routes with a bare handler that checks the
// Authorization header, decodes the same JSON body and answers 200: the
// cost of HTTP alone.
func startBaseline() (*server, error) {
	return serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var body checkBody
		if !readBody(r, &body) {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, baselineBody)
	}))
}
