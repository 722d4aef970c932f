package httpx

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// checkStrict walks the JSON object in data once, before the real decode
// (S28). encoding/json keeps the last of repeated keys and matches keys to
// fields case-insensitively, so {"totp":"1","totp":"2"} or {"TOTP":"1"}
// would be taken, and read in a way a proxy, a WAF or a log reader may
// not expect. checkStrict refuses any object that repeats a key (at any
// depth, compared after unescaping as encoding/json compares them, so
// "\u0074otp" repeats "totp") and any key that names a field of the
// struct it decodes into only case-insensitively; t is the type decoded
// into. Objects of no known struct type (map values, interfaces, unknown
// fields) are checked for repeats only; but in a json.RawMessage, which
// the kit hands on to another decoder (a passkey's credential goes to
// go-webauthn, which matches its fields as encoding/json does), keys that
// differ only in case count as repeats too, at any depth.
//
// A body that is not valid JSON, or not one object, is left to the
// decode, which reports it as before; so is a key that matches no field
// at all (an unknown field). Because data is valid JSON, the walk only
// needs to find where keys and values start and end: it allocates
// nothing unless a key holds an escape or invalid UTF-8 (then it is
// unquoted by encoding/json) or an object has many keys. The tests check
// it against a walk on json.Decoder.Token.
func checkStrict(data []byte, t reflect.Type) error {
	_, err := strictObject(data, t)
	return err
}

// strictObject is checkStrict, also reporting whether data is one valid
// JSON object (so checkStrict walked it).
func strictObject(data []byte, t reflect.Type) (object bool, err error) {
	i := skipSpace(data, 0)
	if i == len(data) || data[i] != '{' || !json.Valid(data) {
		return false, nil
	}
	i++
	// stack holds the open objects and arrays, innermost last; keys holds
	// the keys of every open object, each object's from its frame's start.
	var stackArr [8]strictFrame
	var keysArr [16][]byte
	stack := append(stackArr[:0], newFrame(t, false, false))
	keys := keysArr[:0]
	for len(stack) > 0 {
		top := &stack[len(stack)-1]
		// Separators need no checking in valid JSON: skip them.
		for i < len(data) && (isSpace(data[i]) || data[i] == ',' || data[i] == ':') {
			i++
		}
		c := data[i]
		if c == '}' || c == ']' {
			keys = keys[:top.start]
			stack = stack[:len(stack)-1]
			i++
			continue
		}
		if !top.array && top.wantKey {
			var key []byte
			key, i = readKey(data, i)
			if top.seen(keys, key) {
				return true, invalidParam(strictPath(stack, key), "duplicate field")
			}
			typ, want := top.lookup(key)
			if want != "" {
				return true, invalidParam(strictPath(stack, key),
					`unknown field (field names are case-sensitive: use "`+want+`")`)
			}
			keys = top.add(keys, key)
			top.key, top.next, top.wantKey = key, typ, false
			continue
		}
		// A value: the current key's, or the array's next element.
		if top.array {
			top.index++
		} else {
			top.wantKey = true
		}
		switch c {
		case '{', '[':
			f := newFrame(top.next, c == '[', top.opaque)
			f.start = len(keys)
			stack = append(stack, f)
			i++
		case '"':
			i = stringEnd(data, i)
		default: // a number, true, false or null
			for i < len(data) && !isSpace(data[i]) && data[i] != ',' && data[i] != '}' && data[i] != ']' {
				i++
			}
		}
	}
	return true, nil
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipSpace(data []byte, i int) int {
	for i < len(data) && isSpace(data[i]) {
		i++
	}
	return i
}

// stringEnd returns the index after the JSON string that starts at
// data[i], a quote.
func stringEnd(data []byte, i int) int {
	for i++; data[i] != '"'; i++ {
		if data[i] == '\\' {
			i++
		}
	}
	return i + 1
}

// readKey returns the key that starts at data[i], unquoted as encoding/json
// unquotes it, and the index after it.
func readKey(data []byte, i int) (key []byte, next int) {
	next = stringEnd(data, i)
	raw := data[i+1 : next-1]
	if bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) {
		return raw, next
	}
	var s string
	json.Unmarshal(data[i:next], &s) // valid JSON: cannot fail
	return []byte(s), next
}

// strictFrame is an open object or array in checkStrict.
type strictFrame struct {
	array   bool
	opaque  bool                // in a json.RawMessage: keys compare case-insensitively
	fields  *strictFields       // the struct the object decodes into, or nil
	next    reflect.Type        // the type of the current value (nil: unknown)
	wantKey bool                // object: the next token is a key or '}'
	start   int                 // object: its first key's index in keys
	set     map[string]struct{} // object: its keys, once it has many
	key     []byte              // object: the current key
	index   int                 // array: the index of the current element
}

// newFrame opens an object (or, with array, an array) that decodes into t;
// opaque reports one inside a json.RawMessage.
func newFrame(t reflect.Type, array, opaque bool) strictFrame {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	f := strictFrame{array: array, wantKey: !array, index: -1, opaque: opaque || t == rawMessage}
	if t == nil || f.opaque {
		return f
	}
	switch k := t.Kind(); {
	case array && (k == reflect.Slice || k == reflect.Array):
		f.next = t.Elem()
	case !array && k == reflect.Map:
		f.next = t.Elem()
	case !array && k == reflect.Struct:
		f.fields = fieldsOf(t)
	}
	return f
}

// lookup returns the type of key's value, or, when key names a field of
// the object's struct only case-insensitively (so encoding/json would take
// it), that field's name as want.
func (f *strictFrame) lookup(key []byte) (typ reflect.Type, want string) {
	if f.fields == nil {
		return f.next, "" // a map's values share a type; otherwise unknown
	}
	s := f.fields
	for i, n := range s.names {
		if n == string(key) {
			return s.types[i], ""
		}
	}
	for i, n := range s.names {
		if bytes.EqualFold(s.bytes[i], key) {
			return nil, n
		}
	}
	return nil, "" // an unknown field: the decode rejects it
}

// strictLinear is how many keys an object holds before checkStrict looks
// its keys up in a map rather than by scanning them.
const strictLinear = 16

func (f *strictFrame) seen(keys [][]byte, key []byte) bool {
	if f.set != nil {
		_, ok := f.set[f.setKey(key)]
		return ok
	}
	for _, k := range keys[f.start:] {
		if bytes.Equal(k, key) || f.opaque && bytes.EqualFold(k, key) {
			return true
		}
	}
	return false
}

// setKey is key as the object's set holds it: in an opaque object each
// letter replaced by the least of its simple case folds (K, k and the
// Kelvin sign all become K), so that two keys are one in the set exactly
// when bytes.EqualFold says they are equal.
func (f *strictFrame) setKey(key []byte) string {
	if !f.opaque {
		return string(key)
	}
	out := make([]rune, 0, len(key))
	for _, r := range string(key) {
		least := r
		for o := unicode.SimpleFold(r); o != r; o = unicode.SimpleFold(o) {
			least = min(least, o)
		}
		out = append(out, least)
	}
	return string(out)
}

// rawMessage is the type whose objects are opaque.
var rawMessage = reflect.TypeFor[json.RawMessage]()

func (f *strictFrame) add(keys [][]byte, key []byte) [][]byte {
	keys = append(keys, key)
	if f.set != nil {
		f.set[f.setKey(key)] = struct{}{}
	} else if len(keys)-f.start > strictLinear {
		f.set = make(map[string]struct{}, 2*strictLinear)
		for _, k := range keys[f.start:] {
			f.set[f.setKey(k)] = struct{}{}
		}
	}
	return keys
}

// strictPath names key in the innermost open object for a problem:
// "totp" at the top, "outer.inner" or "list[2].inner" below.
func strictPath(stack []strictFrame, key []byte) string {
	var b strings.Builder
	for i, f := range stack[:len(stack)-1] {
		if f.array {
			b.WriteString("[" + strconv.Itoa(f.index) + "]")
			continue
		}
		if i > 0 {
			b.WriteByte('.')
		}
		b.Write(f.key)
	}
	if len(stack) > 1 {
		b.WriteByte('.')
	}
	b.Write(key)
	return b.String()
}

// strictFields lists the JSON names of a struct's fields, as encoding/json
// matches them, with each field's type.
type strictFields struct {
	names []string
	bytes [][]byte // names, for bytes.EqualFold
	types []reflect.Type
}

var strictCache sync.Map // reflect.Type → *strictFields

// fieldsOf returns the fields of struct type t, cached.
func fieldsOf(t reflect.Type) *strictFields {
	if s, ok := strictCache.Load(t); ok {
		return s.(*strictFields)
	}
	s := &strictFields{}
	collectFields(s, t, map[reflect.Type]bool{})
	v, _ := strictCache.LoadOrStore(t, s)
	return v.(*strictFields)
}

// collectFields adds t's fields as encoding/json names them: the json tag's
// name or the Go name, skipping "-" and unexported fields, and promoting
// the fields of untagged embedded structs. Where promoted names clash
// encoding/json ignores them; listing them anyway only means such a key
// reaches the decode, which rejects it as unknown.
func collectFields(s *strictFields, t reflect.Type, visiting map[reflect.Type]bool) {
	if visiting[t] {
		return
	}
	visiting[t] = true
	defer delete(visiting, t)
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		ft := f.Type
		if f.Anonymous {
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if name == "" && ft.Kind() == reflect.Struct {
				collectFields(s, ft, visiting)
				continue
			}
			if !f.IsExported() {
				continue
			}
		} else if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		s.names = append(s.names, name)
		s.bytes = append(s.bytes, []byte(name))
		s.types = append(s.types, f.Type)
	}
}
