package httpx

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
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
	body := r.Body
	if body == nil {
		body = http.NoBody
	}
	defer body.Close()
	empty := r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody
	if ct := headerValue(r.Header, "Content-Type"); !empty || ct != "" {
		if !isJSONType(ct) {
			return NewProblem(http.StatusUnsupportedMediaType, CodeUnsupportedMediaType,
				"the request body must be application/json")
		}
	}
	// The body is read whole (it is small: limit bytes at most) so that the
	// strict pass and the decode see the same bytes.
	b := bodyBufs.Get().(*bodyBuf)
	defer b.release()
	if err := b.read(body, limit); err != nil {
		return decodeProblem(err)
	}
	object, err := strictObject(b.buf.Bytes(), reflect.TypeOf(dst))
	if err != nil {
		return err
	}
	if object && decodeFlat(b.buf.Bytes(), dst) {
		return validateStruct(dst)
	}
	b.rd.Reset(b.buf.Bytes())
	dec := json.NewDecoder(&b.rd)
	dec.DisallowUnknownFields()
	err = dec.Decode(dst)
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

// isJSONType reports whether the Content-Type value ct is JSON:
// application/json or a +json type, with any parameters. The usual value,
// exactly "application/json", needs no parsing.
func isJSONType(ct string) bool {
	if ct == "application/json" {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

// bodyBuf holds a request body and a reader over it; bodyBufs recycles
// them, as every JSON request needs one.
type bodyBuf struct {
	buf bytes.Buffer
	rd  bytes.Reader
	lim io.LimitedReader
}

var bodyBufs = sync.Pool{New: func() any { return new(bodyBuf) }}

// read reads body whole into b.buf, at most limit bytes (S19): a longer
// body is an *http.MaxBytesError, as http.MaxBytesReader reports it.
// Like it, read takes at most limit+1 bytes from body; unlike it, it
// needs no allocation (the limiting reader lives in b).
func (b *bodyBuf) read(body io.Reader, limit int64) error {
	b.lim = io.LimitedReader{R: body, N: limit}
	if limit < math.MaxInt64 {
		b.lim.N = limit + 1
	}
	_, err := b.buf.ReadFrom(&b.lim)
	b.lim.R = nil
	if err != nil {
		return err
	}
	if int64(b.buf.Len()) > limit {
		return &http.MaxBytesError{Limit: limit}
	}
	return nil
}

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
	if quickValid(v) {
		return nil
	}
	err := validate.Struct(v)
	if err == nil {
		return nil
	}
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
