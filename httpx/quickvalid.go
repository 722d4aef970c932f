package httpx

import (
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// quickValid reports whether validate.Struct(v) would surely pass, for v a
// pointer to a request struct, without calling the validator (which boxes
// every field it visits, three allocations for a code check, and walks
// each by reflection). It understands the tags the request types use on
// string fields: required, omitempty (first), eq, oneof (plain words),
// max and otpcode. A struct with any other tag, or a tagged field of
// another kind, or a field the validator would walk into, is never
// quickly valid; nor is one that breaks a rule. Then validateStruct asks
// the validator, which decides and words the answer. So quickValid only
// ever skips the validator where it would have passed
// (TestQuickValidAgreesWithValidator).
func quickValid(v any) bool {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Struct {
		return false
	}
	rules := quickRulesOf(rv.Elem().Type())
	if rules == nil {
		return false
	}
	s := rv.Elem()
	for _, f := range rules.fields {
		if !f.passes(s.Field(f.index).String()) {
			return false
		}
	}
	return true
}

// quickRules are the validate rules of a struct's string fields; nil
// (in quickCache) for a struct quickValid does not judge.
type quickRules struct {
	fields []quickField
}

type quickField struct {
	index     int
	omitEmpty bool
	required  bool
	eq        []string // oneof's words, or eq's one value; nil: any
	max       int      // in runes, as the validator counts; -1: none
	otp       bool
}

func (f *quickField) passes(s string) bool {
	switch {
	case s == "" && f.omitEmpty:
		return true
	case s == "" && f.required:
		return false
	case f.eq != nil && !slices.Contains(f.eq, s):
		return false
	case f.max >= 0 && utf8.RuneCountInString(s) > f.max:
		return false
	case f.otp && !isOTP(s):
		return false
	}
	return true
}

var quickCache sync.Map // reflect.Type → *quickRules

func quickRulesOf(t reflect.Type) *quickRules {
	if r, ok := quickCache.Load(t); ok {
		return r.(*quickRules)
	}
	r := compileQuickRules(t)
	v, _ := quickCache.LoadOrStore(t, r)
	return v.(*quickRules)
}

func compileQuickRules(t reflect.Type) *quickRules {
	r := &quickRules{}
	for i := range t.NumField() {
		sf := t.Field(i)
		tag, tagged := sf.Tag.Lookup("validate")
		if !tagged || tag == "-" {
			// The validator walks into untagged structs (and through
			// pointers and interfaces to them): leave those to it.
			switch sf.Type.Kind() {
			case reflect.String, reflect.Bool, reflect.Int, reflect.Int64:
				continue
			case reflect.Slice:
				if sf.Type.Elem().Kind() == reflect.Uint8 { // []byte, json.RawMessage
					continue
				}
			}
			return nil
		}
		if sf.Type.Kind() != reflect.String || !sf.IsExported() {
			return nil
		}
		f := quickField{index: i, max: -1}
		for j, rule := range strings.Split(tag, ",") {
			name, param, _ := strings.Cut(rule, "=")
			switch {
			case name == "omitempty" && j == 0 && param == "":
				f.omitEmpty = true
			case name == "required" && param == "":
				f.required = true
			case name == "otpcode" && param == "":
				f.otp = true
			case name == "eq" && param != "" && f.eq == nil && !strings.ContainsAny(param, `'|\ `):
				f.eq = []string{param}
			case name == "oneof" && param != "" && f.eq == nil && !strings.ContainsAny(param, `'|\`):
				f.eq = strings.Fields(param)
			case name == "max" && f.max < 0:
				n, err := strconv.Atoi(param)
				if err != nil || n < 0 {
					return nil
				}
				f.max = n
			default:
				return nil
			}
		}
		r.fields = append(r.fields, f)
	}
	return r
}
