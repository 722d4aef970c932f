package mailer

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"strings"
	texttemplate "text/template"
	"time"
)

//go:embed templates/*
var builtin embed.FS

// CodeData is what the one-time-code templates receive.
type CodeData struct {
	// Product is the issuer name shown to the user.
	Product string
	// User is the recipient's username.
	User string
	// Code is the one-time code.
	Code string
	// TTL is how long the code is valid.
	TTL time.Duration
}

// Minutes returns TTL in whole minutes, rounded up, for templates.
func (d CodeData) Minutes() int { return int((d.TTL + time.Minute - 1) / time.Minute) }

// Template renders one kind of message. Subject and Text are text/template
// sources; HTML is an html/template source (so values are escaped).
type Template struct {
	subject *texttemplate.Template
	text    *texttemplate.Template
	html    *htmltemplate.Template
}

// ErrCodeInSubject is returned by ParseTemplate and ParseTemplateFS for a
// subject that would show the one-time code, or any part of it (S29): lock
// screens, notification previews and mail server logs show subjects. Keep
// the code in the text and HTML bodies.
var ErrCodeInSubject = errors.New("mailer: the subject template shows the one-time code (S29); " +
	"keep {{.Code}} out of the subject and put it in the body")

// ParseTemplate parses the three sources of a message. html may be empty for
// a text-only message. A subject that would render CodeData.Code is
// refused with ErrCodeInSubject (S29).
func ParseTemplate(subject, text, html string) (*Template, error) {
	t := &Template{}
	var err error
	if t.subject, err = texttemplate.New("subject").Option("missingkey=error").Parse(subject); err != nil {
		return nil, err
	}
	if err := checkSubject(t.subject); err != nil {
		return nil, err
	}
	if t.text, err = texttemplate.New("text").Option("missingkey=error").Parse(text); err != nil {
		return nil, err
	}
	if html != "" {
		if t.html, err = htmltemplate.New("html").Option("missingkey=error").Parse(html); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// checkSubject renders subject with two CodeData that differ only in their
// codes, sentinels of the same length with no digit in common: if the
// subjects differ, the subject shows the code or something made from it
// (a prefix, say). A subject that cannot render CodeData (a notice's) is
// not a code subject and passes.
func checkSubject(subject *texttemplate.Template) error {
	var a, b bytes.Buffer
	data := CodeData{Product: "Product", User: "user", Code: "428613", TTL: 10 * time.Minute}
	if subject.Execute(&a, data) != nil {
		return nil
	}
	data.Code = "975720"
	if subject.Execute(&b, data) != nil || a.String() != b.String() || strings.Contains(a.String(), "428613") {
		return ErrCodeInSubject
	}
	return nil
}

// Render builds the message for to from data.
func (t *Template) Render(to string, data any) (Message, error) {
	m := Message{To: to}
	var b bytes.Buffer
	if err := t.subject.Execute(&b, data); err != nil {
		return Message{}, err
	}
	m.Subject = strings.TrimSpace(strings.ReplaceAll(b.String(), "\n", " "))
	b.Reset()
	if err := t.text.Execute(&b, data); err != nil {
		return Message{}, err
	}
	m.Text = b.String()
	if t.html != nil {
		b.Reset()
		if err := t.html.Execute(&b, data); err != nil {
			return Message{}, err
		}
		m.HTML = b.String()
	}
	return m, nil
}

func mustBuiltin(name string) *Template {
	read := func(ext string) string {
		b, err := builtin.ReadFile("templates/" + name + ext)
		if err != nil {
			panic(err)
		}
		return string(b)
	}
	t, err := ParseTemplate(read(".subject.txt"), read(".txt"), read(".html"))
	if err != nil {
		panic(err)
	}
	return t
}

// DefaultCodeTemplate is the built-in email that carries a one-time code;
// it receives CodeData.
var DefaultCodeTemplate = mustBuiltin("code")

// NoticeData is what the change-notice templates receive (S17).
type NoticeData struct {
	// Product is the issuer name shown to the user.
	Product string
	// User is the recipient's username.
	User string
	// Change is "added" or "removed".
	Change string
	// FactorName names the factor for people, e.g. "an authenticator app".
	FactorName string
	// Actor says who acted: "You" or "An administrator (name)".
	Actor string
	// Time is when the change happened.
	Time time.Time
	// ReportTo is whom to tell about a change the user did not make.
	ReportTo string
}

// When formats Time for the message, in UTC.
func (d NoticeData) When() string { return d.Time.UTC().Format("Mon, 2 Jan 2006 15:04 MST") }

// DefaultNoticeTemplate is the built-in notice sent when a factor is added
// or removed; it receives NoticeData.
var DefaultNoticeTemplate = mustBuiltin("notice")

// ParseTemplateFS reads a message's templates from fsys: name.subject.txt,
// name.txt and, if present, name.html — the layout of the built-in ones
// (see the templates folder), so a host can copy and edit them. Like
// ParseTemplate it refuses a subject that shows the code (S29), naming the
// file.
func ParseTemplateFS(fsys fs.FS, name string) (*Template, error) {
	read := func(ext string, optional bool) (string, error) {
		b, err := fs.ReadFile(fsys, name+ext)
		if optional && errors.Is(err, fs.ErrNotExist) {
			return "", nil
		}
		return string(b), err
	}
	subject, err := read(".subject.txt", false)
	if err != nil {
		return nil, err
	}
	text, err := read(".txt", false)
	if err != nil {
		return nil, err
	}
	html, err := read(".html", true)
	if err != nil {
		return nil, err
	}
	t, err := ParseTemplate(subject, text, html)
	if errors.Is(err, ErrCodeInSubject) {
		return nil, fmt.Errorf("%s.subject.txt: %w", name, err)
	}
	return t, err
}

// Localized picks a template by locale: the exact tag ("de-CH"), then its
// language ("de"), then Default.
type Localized struct {
	// Default serves every locale without a template of its own.
	Default *Template
	// ByLocale maps BCP 47 tags or languages to templates.
	ByLocale map[string]*Template
}

// For returns the template for locale.
func (l Localized) For(locale string) *Template {
	if t, ok := l.ByLocale[locale]; ok {
		return t
	}
	if lang, _, ok := strings.Cut(locale, "-"); ok {
		if t, ok := l.ByLocale[lang]; ok {
			return t
		}
	}
	return l.Default
}
