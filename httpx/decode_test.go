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
)

// These tests need only decode.go, strict.go and problem.go, so they run
// while the rest of the package is in flux.

func decodeBody(t testing.TB, body, contentType string, dst any, optional bool) error {
	t.Helper()
	req := httptest.NewRequest(http.MethodPut, "/", strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return decodeJSON(req, 4096, dst, optional)
}

// wantProblem checks err is a *Problem with status and, when field is set,
// an invalid_params entry and a detail that name field.
func wantProblem(t *testing.T, err error, status int, field string) *Problem {
	t.Helper()
	var p *Problem
	if !errors.As(err, &p) {
		t.Fatalf("err = %v (%T), want a *Problem", err, err)
	}
	if p.Status != status {
		t.Fatalf("status %d, want %d: %v", p.Status, status, p)
	}
	if field != "" {
		if len(p.InvalidParams) == 0 || p.InvalidParams[0].Name != field || !strings.Contains(p.Detail, field) {
			t.Fatalf("problem does not name %q: %+v", field, p)
		}
	}
	return p
}

// strictNested has the shapes a request body could nest: a struct, a
// pointer to one, a map, a slice of structs, an interface and an embedded
// struct whose fields are promoted.
type strictNested struct {
	strictEmbedded
	Key    string            `json:"key"`
	Inner  strictInner       `json:"inner"`
	Ptr    *strictInner      `json:"ptr"`
	Labels map[string]string `json:"labels"`
	Deep   map[string]strictInner
	List   []strictInner   `json:"list"`
	Any    any             `json:"any"`
	Raw    json.RawMessage `json:"raw"`
	Hidden string          `json:"-"`
	hidden string
}

type strictInner struct {
	TOTP string `json:"totp"`
}

type strictEmbedded struct {
	Region string `json:"region"`
}

// S28: duplicate keys and keys that match a field only case-insensitively
// are refused with a 400 naming the key, like unknown fields.
func TestDecodeStrictRejects(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, body, field, reason string
		nested                    bool // decode into strictNested, not CodeRequest
	}{
		{"duplicate top-level key", `{"mfatype":"AUTHENTICATOR","totp":"123456","totp":"654321"}`, "totp", "duplicate", false},
		{"duplicate key first", `{"mfatype":"EMAIL","mfatype":"AUTHENTICATOR","totp":"123456"}`, "mfatype", "duplicate", false},
		{"duplicate after unescaping", `{"mfatype":"AUTHENTICATOR","totp":"123456","\u0074otp":"654321"}`, "totp", "duplicate", false},
		{"duplicate nested key in an unknown field", `{"mfatype":"AUTHENTICATOR","totp":"123456","x":{"a":1,"a":2}}`, "x.a", "duplicate", false},
		{"TOTP", `{"mfatype":"AUTHENTICATOR","TOTP":"123456"}`, "TOTP", `use "totp"`, false},
		{"TOTP alone", `{"TOTP":"123456"}`, "TOTP", `use "totp"`, false},
		{"Mfatype", `{"Mfatype":"AUTHENTICATOR","totp":"123456"}`, "Mfatype", `use "mfatype"`, false},
		{"MFATYPE after mfatype", `{"mfatype":"AUTHENTICATOR","totp":"123456","MFATYPE":"EMAIL"}`, "MFATYPE", `use "mfatype"`, false},
		{"Kelvin sign folds to k", `{"\u212aey":"x"}`, "\u212aey", `use "key"`, true},
		{"duplicate nested key", `{"inner":{"totp":"1","totp":"2"}}`, "inner.totp", "duplicate", true},
		{"nested case", `{"inner":{"Totp":"1"}}`, "inner.Totp", `use "totp"`, true},
		{"through a pointer", `{"ptr":{"TOTP":"1"}}`, "ptr.TOTP", `use "totp"`, true},
		{"in a list", `{"list":[{"totp":"1"},{"totp":"2","TOTP":"3"}]}`, "list[1].TOTP", `use "totp"`, true},
		{"duplicate in a list", `{"list":[{},{},{"totp":"2","totp":"3"}]}`, "list[2].totp", "duplicate", true},
		{"map value of a struct type", `{"Deep":{"a":{"totp":"1"},"b":{"tOTP":"1"}}}`, "Deep.b.tOTP", `use "totp"`, true},
		{"duplicate map key", `{"labels":{"a":"1","b":"2","a":"3"}}`, "labels.a", "duplicate", true},
		{"duplicate in an interface", `{"any":[{"z":[{"y":1,"y":1}]}]}`, "any[0].z[0].y", "duplicate", true},
		{"promoted field", `{"Region":"eu"}`, "Region", `use "region"`, true},
		{"Go name of a tagged field", `{"Inner":{}}`, "Inner", `use "inner"`, true},
		{"duplicate of an untagged Go name", `{"Deep":{},"Deep":{}}`, "Deep", "duplicate", true},
		{"duplicate in a large object", `{"labels":{` + manyKeys(40) + `,"k07":"again"}}`, "labels.k07", "duplicate", true},
		{"case variant in a RawMessage", `{"raw":{"id":"a","ID":"b"}}`, "raw.ID", "duplicate", true},
		{"case variant deep in a RawMessage", `{"raw":{"r":[{"type":1,"Type":2}]}}`, "raw.r[0].Type", "duplicate", true},
		{"Kelvin sign in a large RawMessage", `{"raw":{` + manyKeys(40) + `,"K07":"again"}}`, "raw.K07", "duplicate", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var dst any = new(CodeRequest)
			if c.nested {
				dst = new(strictNested)
			}
			p := wantProblem(t, decodeBody(t, c.body, "application/json", dst, false), http.StatusBadRequest, c.field)
			if p.Code != CodeInvalidRequest || !strings.Contains(p.InvalidParams[0].Reason, c.reason) {
				t.Fatalf("problem %+v, want code %s and a reason with %q", p, CodeInvalidRequest, c.reason)
			}
		})
	}
}

// manyKeys lists n distinct keys, "k00" to "k<n-1>", as object members.
func manyKeys(n int) string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf(`"k%02d":"v"`, i)
	}
	return strings.Join(keys, ",")
}

// The strict pass accepts what it should: exact names, keys that differ
// only in case where the target is a map, the same key in sibling
// objects, and names the struct hides ("-", unexported) go on to be
// unknown fields.
func TestDecodeStrictAccepts(t *testing.T) {
	t.Parallel()
	var req CodeRequest
	if err := decodeBody(t, ` {"mfatype":"AUTHENTICATOR", "totp":"123456"} `, "application/json; charset=utf-8", &req, false); err != nil {
		t.Fatal(err)
	}
	if req.MFAType != "AUTHENTICATOR" || req.TOTP != "123456" {
		t.Fatalf("decoded %+v", req)
	}
	var n strictNested
	body := `{"key":"k","region":"eu","inner":{"totp":"1"},"ptr":{"totp":"2"},"labels":{"a":"1","A":"2"},` +
		`"Deep":{"x":{"totp":"3"},"y":{"totp":"4"}},"list":[{"totp":"5"},{"totp":"6"}],"any":{"q":1,"Q":[{"q":1},{"q":2}]}}`
	if err := decodeBody(t, body, "application/json", &n, false); err != nil {
		t.Fatal(err)
	}
	if n.Region != "eu" || n.Ptr.TOTP != "2" || n.Labels["A"] != "2" || n.Deep["y"].TOTP != "4" || n.List[1].TOTP != "6" {
		t.Fatalf("decoded %+v", n)
	}
	if err := decodeBody(t, `{"labels":{`+manyKeys(40)+`}}`, "application/json", &n, false); err != nil {
		t.Fatalf("a large object without repeats: %v", err)
	}
	// Hidden names are not fields: unknown, as before.
	for _, key := range []string{"Hidden", "hidden", "-"} {
		p := wantProblem(t, decodeBody(t, `{"`+key+`":"x"}`, "application/json", new(strictNested), false), http.StatusBadRequest, key)
		if p.InvalidParams[0].Reason != "unknown field" {
			t.Fatalf("%s: %+v", key, p)
		}
	}
}

// encoding/json alone takes the bodies S28 refuses (last repeat wins,
// case and Unicode folding match fields), which is why the strict pass
// exists.
func TestStrictIsNeeded(t *testing.T) {
	t.Parallel()
	var r CodeRequest
	if err := json.Unmarshal([]byte(`{"TOTP":"1","totp":"2","totp":"3"}`), &r); err != nil || r.TOTP != "3" {
		t.Fatalf("encoding/json: %+v %v", r, err)
	}
	var n strictNested
	if err := json.Unmarshal([]byte(`{"\u212aey":"x"}`), &n); err != nil || n.Key != "x" {
		t.Fatalf("encoding/json: %+v %v", n, err)
	}
}

// The checks that came before S28 answer as they did.
func TestDecodeKeepsEarlierChecks(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, body, contentType string
		status                  int
		code, field             string
	}{
		{"not json", `mfatype=AUTHENTICATOR`, "application/x-www-form-urlencoded", 415, CodeUnsupportedMediaType, ""},
		{"no content type", `{"mfatype":"AUTHENTICATOR","totp":"123456"}`, "", 415, CodeUnsupportedMediaType, ""},
		{"too large", `{"mfatype":"AUTHENTICATOR","totp":"` + strings.Repeat("1", 5000) + `"}`, "application/json", 413, CodeBodyTooLarge, ""},
		{"unknown field", `{"mfatype":"AUTHENTICATOR","totp":"123456","admin":true}`, "application/json", 400, CodeInvalidRequest, "admin"},
		{"wrong type", `{"mfatype":"AUTHENTICATOR","totp":123456}`, "application/json", 400, CodeInvalidRequest, "totp"},
		{"missing code", `{"mfatype":"AUTHENTICATOR"}`, "application/json", 400, CodeInvalidRequest, "totp"},
		{"syntax", `{"mfatype":`, "application/json", 400, CodeInvalidRequest, ""},
		{"bad byte", `{"mfatype" x}`, "application/json", 400, CodeInvalidRequest, ""},
		{"two objects", `{"mfatype":"AUTHENTICATOR","totp":"123456"}{}`, "application/json", 400, CodeInvalidRequest, ""},
		{"two objects, the second with a repeat", `{"mfatype":"AUTHENTICATOR","totp":"123456"}{"a":1,"a":1}`, "application/json", 400, CodeInvalidRequest, ""},
		{"array", `[{"totp":"1","totp":"2"}]`, "application/json", 400, CodeInvalidRequest, ""},
		{"null", `null`, "application/json", 400, CodeInvalidRequest, "mfatype"},
		{"empty", ``, "application/json", 400, CodeInvalidRequest, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			p := wantProblem(t, decodeBody(t, c.body, c.contentType, new(CodeRequest), false), c.status, c.field)
			if p.Code != c.code {
				t.Fatalf("code %s, want %s: %+v", p.Code, c.code, p)
			}
		})
	}
	p := wantProblem(t, decodeBody(t, `[]`, "application/json", new(CodeRequest), false), 400, "")
	if p.Detail != "the body must be a JSON object" {
		t.Fatalf("array: %+v", p)
	}
	// An optional body may be empty or absent.
	var a associateRequest
	if err := decodeBody(t, "", "", &a, true); err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPut, "/", nil)
	req.Body = nil
	if err := decodeJSON(req, 4096, &a, true); err != nil {
		t.Fatalf("nil body: %v", err)
	}
	wantProblem(t, decodeBody(t, `{"Mfatype":"AUTHENTICATOR"}`, "application/json", &a, true), 400, "Mfatype")
}

// strictRef is checkStrict written plainly, recursively on
// json.Decoder.Token: the path of the first repeated or case-folded key in
// data decoded into t, and whether there is one.
func strictRef(data []byte, t reflect.Type) (string, bool) {
	if !json.Valid(data) {
		return "", false
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, _ := dec.Token(); tok != json.Delim('{') {
		return "", false
	}
	return refObject(dec, t, "", t == reflect.TypeFor[json.RawMessage]())
}

func refValue(dec *json.Decoder, tok json.Token, t reflect.Type, path string, opaque bool) (string, bool) {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch tok {
	case json.Delim('{'):
		return refObject(dec, t, path+".", opaque || t == reflect.TypeFor[json.RawMessage]())
	case json.Delim('['):
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for i := 0; ; i++ {
			tok, _ := dec.Token()
			if tok == json.Delim(']') {
				return "", false
			}
			if bad, ok := refValue(dec, tok, elem, fmt.Sprintf("%s[%d]", path, i), opaque || t == reflect.TypeFor[json.RawMessage]()); ok {
				return bad, true
			}
		}
	}
	return "", false
}

// In a json.RawMessage (opaque) keys that differ only in case are
// repeats, at any depth.
func refObject(dec *json.Decoder, t reflect.Type, prefix string, opaque bool) (string, bool) {
	var seen []string
	for {
		tok, _ := dec.Token()
		if tok == json.Delim('}') {
			return "", false
		}
		key := tok.(string)
		name := prefix + key
		for _, k := range seen {
			if k == key || opaque && strings.EqualFold(k, key) {
				return name, true
			}
		}
		seen = append(seen, key)
		var vt reflect.Type
		if opaque {
			// Nothing inside a RawMessage has a type.
		} else if t != nil && t.Kind() == reflect.Map {
			vt = t.Elem()
		} else if t != nil && t.Kind() == reflect.Struct {
			fields, exact := fieldsOf(t), false
			for i, n := range fields.names {
				if n == key {
					vt, exact = fields.types[i], true
				}
			}
			for _, n := range fields.names {
				if !exact && strings.EqualFold(n, key) {
					return name, true
				}
			}
		}
		tok, _ = dec.Token()
		if bad, ok := refValue(dec, tok, vt, name, opaque); ok {
			return bad, true
		}
	}
}

// FuzzCheckStrict checks the byte walk of checkStrict against strictRef,
// for a flat request, a nested struct and a map.
func FuzzCheckStrict(f *testing.F) {
	for _, seed := range []string{
		`{"mfatype":"AUTHENTICATOR","totp":"123456"}`,
		`{"mfatype":"AUTHENTICATOR","totp":"123456","totp":"1"}`,
		`{"TOTP":"123456"}`,
		`{"Mfatype":"EMAIL"}`,
		`{"tot\u0070":"1", "totp" : "2"}`,
		`{"a\ud800":1,"a\ufffd":2}`,
		"{\"a\xff\":1,\"a\xfe\":2}",
		`{"\u212aey":"x"}`,
		`{"inner":{"totp":"1","totp":"2"}}`,
		`{"list":[{"totp":"1"},{"totp":"2","TOTP":"3"}],"any":[[1,{"a":[]}],{"a":{"b":1,"b":2}}]}`,
		`{"Deep":{"a":{"totp":"1"},"b":{"tOTP":"1"}},"labels":{"x":"\"}\\","x":"y"}}`,
		`{"labels":{` + manyKeys(20) + `,"k03":"v"}}`,
		` { "a" : [ true , false , null , -1.5e3 , "]" ] , "a" : 0 } `,
		`{} {"a":1,"a":1}`,
		`[{"a":1,"a":1}]`,
		`{"":{"":{},"":{}}}`,
		`{"mfatype":"WEBAUTHN","credential":{"id":"a","ID":"b"}}`,
		`{"credential":{"response":{"x":1,"X":2}},"credential2":{"a":1,"A":1}}`,
		`{"credential":[{"k":1,"K":2}]}`,
	} {
		f.Add([]byte(seed))
	}
	types := []reflect.Type{reflect.TypeFor[CodeRequest](), reflect.TypeFor[strictNested](), reflect.TypeFor[map[string]any](),
		reflect.TypeFor[CheckRequest]()}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, typ := range types {
			var got string
			err := checkStrict(data, typ)
			if err != nil {
				got = err.(*Problem).InvalidParams[0].Name
			}
			if want, bad := strictRef(data, typ); got != want || (err != nil) != bad {
				t.Fatalf("%q into %v: checkStrict refuses %v (%q), the Token walk %v (%q)", data, typ, err != nil, got, bad, want)
			}
		}
	})
}

// BenchmarkDecodeJSON measures decoding the verify body, the hot path.
func BenchmarkDecodeJSON(b *testing.B) {
	const body = `{"mfatype":"AUTHENTICATOR","totp":"123456"}`
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPut, "/", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		var dst CodeRequest
		if err := decodeJSON(req, 4096, &dst, false); err != nil {
			b.Fatal(err)
		}
	}
}
