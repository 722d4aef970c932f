package httpx

import (
	"bytes"
	"encoding"
	"encoding/json"
	"reflect"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/mfakit/mfakit/mfa"
)

// decodeFlat is decodeJSON's fast path for the common body: a JSON object
// whose every key names a plain string field of the struct dst points to,
// and whose every value is a string without escapes, in valid UTF-8, such
// as {"mfatype":"AUTHENTICATOR","totp":"123456"}. It sets those fields
// and reports true. For any other body it changes nothing and reports
// false, and decodeJSON decodes the body with encoding/json, which
// decides and words every error. What decodeFlat decodes, encoding/json
// decodes the same (TestDecodeFlatMatchesEncodingJSON, FuzzDecodeFlat);
// it saves encoding/json's decoder, scanner and reflection allocations.
//
// data must be one valid JSON object that checkStrict passed: no key
// repeats, and none names a field only case-insensitively.
func decodeFlat(data []byte, dst any) bool {
	v := reflect.ValueOf(dst)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return false
	}
	ff := flatFieldsOf(v.Elem().Type())
	if ff == nil {
		return false
	}
	// Find every value first, so that a body the fast path cannot take
	// leaves dst as it was.
	type value struct {
		field int
		raw   []byte
	}
	var valuesArr [8]value
	values := valuesArr[:0]
	i := skipSpace(data, 0) + 1 // after '{'
	for {
		for isSpace(data[i]) || data[i] == ',' {
			i++
		}
		if data[i] == '}' {
			break
		}
		key, next := readKey(data, i)
		i = skipSpace(data, next) + 1 // after ':'
		i = skipSpace(data, i)
		if data[i] != '"' {
			return false // null, a number, an object...: encoding/json decides
		}
		end := stringEnd(data, i)
		raw := data[i+1 : end-1]
		if bytes.IndexByte(raw, '\\') >= 0 || !utf8.Valid(raw) {
			return false // encoding/json unescapes, or replaces bad UTF-8
		}
		f := ff.field(key)
		if f < 0 || len(values) == cap(values) {
			return false
		}
		values = append(values, value{f, raw})
		i = end
	}
	s := v.Elem()
	for _, val := range values {
		s.Field(val.field).SetString(intern(val.raw))
	}
	return true
}

// intern returns raw as a string, without allocating when it is a factor
// name, the value of every mfatype field.
func intern(raw []byte) string {
	for _, f := range []mfa.Factor{mfa.Authenticator, mfa.Email, mfa.WebAuthn, mfa.Recovery} {
		if string(raw) == string(f) {
			return string(f)
		}
	}
	return string(raw)
}

// flatFields lists the fields of a struct that decodeFlat may fill, by
// JSON name: index is the field's index, or -1 for a field that is not a
// plain string (another kind, a string with its own JSON or text
// unmarshalling, or one tagged ",string"), which encoding/json decodes.
type flatFields struct {
	names []string
	index []int
}

// field returns the index of the plain string field named key, or -1.
func (f *flatFields) field(key []byte) int {
	for i, n := range f.names {
		if n == string(key) {
			return f.index[i]
		}
	}
	return -1
}

var (
	flatCache           sync.Map // reflect.Type → *flatFields (nil: not flat)
	jsonUnmarshalerType = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// flatNameChars are the characters of the JSON names decodeFlat takes;
// encoding/json takes more, but the kit's requests need no others.
const flatNameChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"

// flatFieldsOf returns the fields of struct type t, cached; nil when t
// has a field whose JSON name depends on more than its own tag (an
// embedded struct, two fields of one name, a name encoding/json would not
// take as written), where decodeFlat leaves every body to encoding/json.
func flatFieldsOf(t reflect.Type) *flatFields {
	if f, ok := flatCache.Load(t); ok {
		return f.(*flatFields)
	}
	f := &flatFields{}
	for i := range t.NumField() {
		sf := t.Field(i)
		if sf.Anonymous {
			f = nil
			break
		}
		tag := sf.Tag.Get("json")
		if !sf.IsExported() || tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = sf.Name
		}
		if strings.Trim(name, flatNameChars) != "" || indexOf(f.names, name) >= 0 {
			f = nil
			break
		}
		index := i
		ft := sf.Type
		if ft.Kind() != reflect.String || hasOption(opts, "string") ||
			ft.Implements(jsonUnmarshalerType) || reflect.PointerTo(ft).Implements(jsonUnmarshalerType) ||
			ft.Implements(textUnmarshalerType) || reflect.PointerTo(ft).Implements(textUnmarshalerType) {
			index = -1
		}
		f.names = append(f.names, name)
		f.index = append(f.index, index)
	}
	v, _ := flatCache.LoadOrStore(t, f)
	return v.(*flatFields)
}

func indexOf(names []string, name string) int {
	for i, n := range names {
		if n == name {
			return i
		}
	}
	return -1
}

// hasOption reports whether the comma-separated tag options opts hold opt.
func hasOption(opts, opt string) bool {
	for opts != "" {
		var o string
		o, opts, _ = strings.Cut(opts, ",")
		if o == opt {
			return true
		}
	}
	return false
}
