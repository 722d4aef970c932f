package httpx

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mfakit/mfakit/mfa"
)

// flatOdd has the fields decodeFlat must leave to encoding/json: a
// string tagged ",string", a string type with its own unmarshalling, a
// number and a raw message; and one it takes, named by its Go name.
type flatOdd struct {
	Quoted string          `json:"quoted,string"`
	Text   textString      `json:"text"`
	N      int             `json:"n"`
	Raw    json.RawMessage `json:"raw"`
	Plain  string
}

type textString string

func (t *textString) UnmarshalText(b []byte) error { *t = textString("T:" + string(b)); return nil }

// flatEmbedded is never decoded by decodeFlat: it embeds a struct.
type flatEmbedded struct {
	strictEmbedded
	Key string `json:"key"`
}

var flatSeeds = []string{
	`{"mfatype":"AUTHENTICATOR","totp":"123456"}`,
	` { "totp" : "1" , "mfatype" : "EMAIL" } `,
	`{}`,
	`{"mfatype":"AUTHENTICATOR"}`,
	`{"mfatype":"AUTHENTICATOR","totp":null}`,
	`{"mfatype":"AUTHENTICATOR","totp":123456}`,
	`{"mfatype":"AUTHENTICATOR","totp":"12\u00334"}`,
	`{"mfatype":"AUTHENTICATOR","totp":"12\"34"}`,
	"{\"mfatype\":\"AUTHENTICATOR\",\"totp\":\"\xff\"}",
	`{"mfatype":"WEBAUTHN","credential":{"id":"x"}}`,
	`{"mfatype":"AUTHENTICATOR","totp":"1","other":"x"}`,
	`{"m\u0066atype":"EMAIL"}`,
	`{"mfatype":"élan ✓","totp":""}`,
	`{"quoted":"\"x\"","text":"y","n":1,"raw":"z","Plain":"p"}`,
	`{"Plain":"p"}`,
	`{"text":"y"}`,
	`{"quoted":"x"}`,
	`{"key":"k","region":"r"}`,
	`{"a":"1","b":"2","c":"3","d":"4","e":"5","f":"6","g":"7","h":"8","i":"9"}`,
}

// flatTypes are the types the flat decode is checked on.
var flatTypes = []func() any{
	func() any { return &CodeRequest{} },
	func() any { return &CheckRequest{} },
	func() any { return &flatOdd{} },
	func() any { return &flatEmbedded{} },
	func() any { return &CodeRequest{MFAType: "before", TOTP: "before"} },
}

// checkFlat checks decodeFlat on data against encoding/json, strict as
// decodeJSON is: when decodeFlat takes a body, encoding/json decodes it
// without error to the same value; when it does not, dst is unchanged.
func checkFlat(t *testing.T, data []byte) {
	t.Helper()
	for _, newDst := range flatTypes {
		dst := newDst()
		object, err := strictObject(data, reflect.TypeOf(dst))
		if !object || err != nil {
			continue
		}
		if !decodeFlat(data, dst) {
			if want := newDst(); !reflect.DeepEqual(dst, want) {
				t.Fatalf("%q into %T: decodeFlat declined but changed dst to %+v", data, dst, dst)
			}
			continue
		}
		want := newDst()
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(want); err != nil {
			t.Fatalf("%q into %T: decodeFlat took it, encoding/json refuses it: %v", data, dst, err)
		}
		if !reflect.DeepEqual(dst, want) {
			t.Fatalf("%q into %T: decodeFlat %+v, encoding/json %+v", data, dst, dst, want)
		}
	}
}

func TestDecodeFlatMatchesEncodingJSON(t *testing.T) {
	for _, s := range flatSeeds {
		checkFlat(t, []byte(s))
	}
	// The fast path is taken where it should be.
	var req CheckRequest
	if !decodeFlat([]byte(`{"mfatype":"AUTHENTICATOR","totp":"123456"}`), &req) || req.TOTP != "123456" {
		t.Fatalf("the verify body was not decoded flat: %+v", req)
	}
	for _, s := range []string{`{"quoted":"x"}`, `{"text":"y"}`, `{"n":1}`} {
		if decodeFlat([]byte(s), &flatOdd{}) {
			t.Errorf("%s: decodeFlat took a field it must leave to encoding/json", s)
		}
	}
	if decodeFlat([]byte(`{"key":"k"}`), &flatEmbedded{}) {
		t.Error("decodeFlat took a struct with an embedded struct")
	}
}

func FuzzDecodeFlat(f *testing.F) {
	for _, s := range flatSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkFlat(t, data) })
}

// quickValidCases are values of every request type with their rules
// broken and kept.
func quickValidCases() []any {
	codes := []string{"", "123456", "12345", "123456789", "12345a", "00000000", "１２３４５６", strings.Repeat("9", 64),
		strings.Repeat("é", 32), strings.Repeat("é", 33), strings.Repeat("x", 65), strings.Repeat("x", 1025)}
	types := []string{"", "AUTHENTICATOR", "EMAIL", "WEBAUTHN", "RECOVERY", "authenticator", "AUTHENTICATOR ", "x"}
	var out []any
	for _, mt := range types {
		out = append(out, &associateRequest{MFAType: mt}, &associateWebAuthnRequest{MFAType: mt})
		for _, c := range codes {
			out = append(out, &CodeRequest{MFAType: mt, TOTP: c}, &CheckRequest{MFAType: mt, TOTP: c},
				&ResetRequest{MFAType: mt, TOTP: c, Username: c, StateToken: c},
				&WebAuthnEnrollRequest{MFAType: mt, Name: c},
				&switchRequest{StateToken: c},
				&signInRequest{StateToken: c, StateTokenCamel: c, TOTP: c, Code: c})
		}
	}
	return out
}

// TestQuickValidAgreesWithValidator: quickValid says valid only where the
// validator passes, and does for the valid bodies of the hot routes.
func TestQuickValidAgreesWithValidator(t *testing.T) {
	for _, v := range quickValidCases() {
		if quickValid(v) {
			if err := validate.Struct(v); err != nil {
				t.Errorf("%T %+v: quickValid passes it, the validator refuses it: %v", v, v, err)
			}
		}
	}
	for _, v := range []any{
		&CodeRequest{MFAType: "AUTHENTICATOR", TOTP: "123456"},
		&CheckRequest{MFAType: "AUTHENTICATOR", TOTP: "123456"},
		&CheckRequest{MFAType: "WEBAUTHN", Credential: json.RawMessage(`{}`)},
	} {
		if !quickValid(v) {
			t.Errorf("%T %+v: not quickly valid", v, v)
		}
	}
}

// TestWriteFactorMatchesWriteJSON: the precomputed factor answers are
// what writeJSON writes.
func TestWriteFactorMatchesWriteJSON(t *testing.T) {
	for _, f := range []mfa.Factor{mfa.Authenticator, mfa.Email, mfa.WebAuthn, mfa.Recovery, "OTHER"} {
		for _, verified := range []bool{false, true} {
			got, want := httptest.NewRecorder(), httptest.NewRecorder()
			writeFactor(got, f, verified)
			writeJSON(want, http.StatusOK, FactorResponse{MFAType: f, Verified: verified})
			if got.Code != want.Code || got.Body.String() != want.Body.String() || !reflect.DeepEqual(got.Header(), want.Header()) {
				t.Errorf("%s %v: writeFactor %d %v %q, writeJSON %d %v %q", f, verified,
					got.Code, got.Header(), got.Body, want.Code, want.Header(), want.Body)
			}
		}
	}
}

// TestDefaultErrorHandlerMatchesWriteProblem: the precomputed answer of
// every domain error is what WriteProblem(ProblemFor(err)) writes, status,
// headers (Retry-After included) and body.
func TestDefaultErrorHandlerMatchesWriteProblem(t *testing.T) {
	var errs []error
	for _, k := range problemKinds {
		for _, c := range k.cases {
			errs = append(errs, c.err, fmt.Errorf("wrapped: %w", c.err))
		}
	}
	errs = append(errs, &mfa.LockedError{RetryAfter: 1500 * time.Millisecond}, &mfa.RateLimitedError{RetryAfter: time.Minute},
		errors.New("unknown"), NewProblem(http.StatusBadRequest, CodeInvalidRequest, "x"), invalidParam("a", "b"))
	for _, err := range errs {
		got, want := httptest.NewRecorder(), httptest.NewRecorder()
		DefaultErrorHandler(got, nil, err)
		WriteProblem(want, ProblemFor(err))
		if got.Code != want.Code || got.Body.String() != want.Body.String() || !reflect.DeepEqual(got.Header(), want.Header()) {
			t.Errorf("%v: DefaultErrorHandler %d %v %q, WriteProblem %d %v %q", err,
				got.Code, got.Header(), got.Body, want.Code, want.Header(), want.Body)
		}
		if got, want := answerFor(err).status(), ProblemFor(err).Status; got != want {
			t.Errorf("%v: answer status %d, ProblemFor %d", err, got, want)
		}
	}
}

// TestSetAnswerHeadersKeepsValuesApart: the headers share one allocation,
// but adding a value to one does not change another.
func TestSetAnswerHeadersKeepsValuesApart(t *testing.T) {
	h := http.Header{}
	setAnswerHeaders(h, "application/problem+json", true)
	h.Add("Content-Type", "x")
	h.Add("Cache-Control", "y")
	want := http.Header{"Content-Type": {"application/problem+json", "x"}, "Cache-Control": {"no-store", "y"},
		"X-Content-Type-Options": {"nosniff"}}
	if !reflect.DeepEqual(h, want) {
		t.Fatalf("headers %v, want %v", h, want)
	}
}

// TestAcceptLanguage pins the first-tag rule.
func TestAcceptLanguage(t *testing.T) {
	for in, want := range map[string]string{
		"": "", ",": "", "*": "", "*, de": "de", "de-CH, en;q=0.5": "de-CH", " ;q=1 , fr ": "fr",
		"en;q=0.8": "en", strings.Repeat("a", 36) + ",it": "it",
	} {
		if got := acceptLanguage(in); got != want {
			t.Errorf("acceptLanguage(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestDecodeJSONLimit: the body limit holds at its edge (S19).
func TestDecodeJSONLimit(t *testing.T) {
	body := `{"mfatype":"AUTHENTICATOR","totp":"123456"}`
	for _, c := range []struct {
		limit int64
		ok    bool
	}{{int64(len(body)), true}, {int64(len(body)) - 1, false}, {1 << 62, true}, {1<<63 - 1, true}} {
		req := httptest.NewRequest(http.MethodPut, "/", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		var dst CodeRequest
		err := decodeJSON(req, c.limit, &dst, false)
		if c.ok && err != nil {
			t.Errorf("limit %d: %v", c.limit, err)
		}
		if !c.ok {
			if p, isProblem := err.(*Problem); !isProblem || p.Status != http.StatusRequestEntityTooLarge {
				t.Errorf("limit %d: %v, want 413", c.limit, err)
			}
		}
	}
}

// TestHeaderValueIsGet: headerValue is Header.Get for the keys it reads,
// which are canonical.
func TestHeaderValueIsGet(t *testing.T) {
	h := http.Header{}
	h.Add("authorization", "Bearer x")
	h.Add("Authorization", "Bearer y")
	h.Set("Accept-Language", "de")
	for _, key := range []string{"Authorization", "Accept-Language", "Content-Type"} {
		if key != http.CanonicalHeaderKey(key) {
			t.Errorf("%q is not canonical", key)
		}
		if got, want := headerValue(h, key), h.Get(key); got != want {
			t.Errorf("%s: headerValue %q, Get %q", key, got, want)
		}
	}
}
