package main

import (
	"bytes"
	"embed"
	"html/template"
	"io/fs"
	"net/http"
	"path"
)

//go:embed templates static
var files embed.FS

// pages are the parsed templates, by file name; each is the layout with
// one page's "content".
type pages map[string]*template.Template

func parsePages() (pages, error) {
	names, err := fs.Glob(files, "templates/*.html")
	if err != nil {
		return nil, err
	}
	p := pages{}
	for _, name := range names {
		if path.Base(name) == "layout.html" {
			continue
		}
		t, err := template.ParseFS(files, "templates/layout.html", name)
		if err != nil {
			return nil, err
		}
		p[path.Base(name)] = t
	}
	return p, nil
}

// contentSecurityPolicy allows the app's own script and style and the QR
// code's data URI; nothing inline, nothing from elsewhere.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// view is what the layout reads; Data is the page's own.
type view struct {
	User  *user
	Flash string
	Data  any
}

func (a *app) render(w http.ResponseWriter, r *http.Request, page string, data any) {
	a.renderStatus(w, r, http.StatusOK, page, data)
}

// renderStatus writes page with status. The page is rendered into a
// buffer first, so a template error becomes a clean 500.
func (a *app) renderStatus(w http.ResponseWriter, r *http.Request, status int, page string, data any) {
	v := view{User: currentUser(r.Context()), Flash: a.sessions.PopString(r.Context(), keyFlash), Data: data}
	var buf bytes.Buffer
	if err := a.pages[page].ExecuteTemplate(&buf, "layout", v); err != nil {
		a.log.ErrorContext(r.Context(), "template failed", "page", page, "err", err)
		http.Error(w, "Something went wrong on our side.", http.StatusInternalServerError)
		return
	}
	securityHeaders(w.Header())
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
}

// staticFiles serves the style sheet and the script.
func staticFiles() http.Handler {
	fileServer := http.FileServerFS(files)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		securityHeaders(w.Header())
		fileServer.ServeHTTP(w, r)
	})
}
