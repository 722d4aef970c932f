package httpx

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"
	"sync"

	"github.com/go-playground/validator/v10"
)

var validate = newValidator()

func newValidator() *validator.Validate {
	v := validator.New(validator.WithRequiredStructEnabled())
	v.RegisterTagNameFunc(func(f reflect.StructField) string {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		return name
	})
	// otpcode: the shape of a one-time code (isOTP).
	v.RegisterValidation("otpcode", func(fl validator.FieldLevel) bool { return isOTP(fl.Field().String()) })
	return v
}

// decodeJSON reads r's body into dst, which must be a pointer to a struct
// with json and validate tags. The body must be application/json, at most
// limit bytes, one object, with no unknown fields (S19), no duplicate keys
// at any depth and no keys that match a field only case-insensitively
// (S28). When optional is set an empty body is accepted and leaves dst as
// it was (still validated).
func decodeJSON(r *http.Request, limit int64, dst any, optional bool) error {
	rb := r.Body
	if rb == nil {
		rb = http.NoBody
	}
	body := http.MaxBytesReader(nil, rb, limit)
	defer body.Close()
	empty := r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody
	if !empty || r.Header.Get("Content-Type") != "" {
		mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return NewProblem(http.StatusUnsupportedMediaType, CodeUnsupportedMediaType,
				"the request body must be application/json")
		}
	}
	// The body is read whole (it is small: limit bytes at most) so that the
	// strict pass and the decode see the same bytes.
	b := bodyBufs.Get().(*bodyBuf)
	defer b.release()
	if _, err := b.buf.ReadFrom(body); err != nil {
		return decodeProblem(err)
	}
	if err := checkStrict(b.buf.Bytes(), reflect.TypeOf(dst)); err != nil {
		return err
	}
	b.rd.Reset(b.buf.Bytes())
	dec := json.NewDecoder(&b.rd)
	dec.DisallowUnknownFields()
	err := dec.Decode(dst)
	switch {
	case errors.Is(err, io.EOF):
		if !optional {
			return NewProblem(http.StatusBadRequest, CodeInvalidRequest, "a JSON request body is required")
		}
	case err != nil:
		return decodeProblem(err)
	default:
		if _, err := dec.Token(); !errors.Is(err, io.EOF) {
			return NewProblem(http.StatusBadRequest, CodeInvalidRequest, "the body must hold exactly one JSON object")
		}
	}
	return validateStruct(dst)
}

// bodyBuf holds a request body and a reader over it; bodyBufs recycles
// them, as every JSON request needs one.
type bodyBuf struct {
	buf bytes.Buffer
	rd  bytes.Reader
}

var bodyBufs = sync.Pool{New: func() any { return new(bodyBuf) }}

func (b *bodyBuf) release() {
	if b.buf.Cap() > 64<<10 { // a host with a large MaxBodyBytes: do not pin it
		return
	}
	b.buf.Reset()
	b.rd.Reset(nil)
	bodyBufs.Put(b)
}

func decodeProblem(err error) *Problem {
	var tooLarge *http.MaxBytesError
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &tooLarge):
		return NewProblem(http.StatusRequestEntityTooLarge, CodeBodyTooLarge,
			fmt.Sprintf("the request body exceeds %d bytes", tooLarge.Limit))
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return NewProblem(http.StatusBadRequest, CodeInvalidRequest, "the body must be a JSON object")
		}
		return invalidParam(typeErr.Field, "must be a "+jsonKind(typeErr.Type))
	case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF):
		return NewProblem(http.StatusBadRequest, CodeInvalidRequest, "the body is not valid JSON")
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return invalidParam(strings.Trim(name, `"`), "unknown field")
	}
	return NewProblem(http.StatusBadRequest, CodeInvalidRequest, "the body could not be read as JSON")
}

func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Struct, reflect.Map:
		return "object"
	case reflect.Slice, reflect.Array:
		return "array"
	}
	return "number"
}

func validateStruct(v any) error {
	err := validate.Struct(v)
	var verrs validator.ValidationErrors
	if !errors.As(err, &verrs) {
		return err
	}
	p := NewProblem(http.StatusBadRequest, CodeInvalidRequest, "")
	var details []string
	for _, fe := range verrs {
		reason := reasonFor(fe)
		p.InvalidParams = append(p.InvalidParams, InvalidParam{Name: fe.Field(), Reason: reason})
		details = append(details, fe.Field()+": "+reason)
	}
	p.Detail = strings.Join(details, "; ")
	return p
}

func reasonFor(fe validator.FieldError) string {
	switch fe.Tag() {
	case "required":
		return "is required"
	case "oneof", "eq":
		return "must be " + strings.ReplaceAll(fe.Param(), " ", " or ")
	case "otpcode":
		return otpReason
	case "max":
		return "must be at most " + fe.Param() + " characters"
	}
	return "is not valid (" + fe.Tag() + ")"
}
