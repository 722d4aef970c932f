package httpx

import (
	"net/http"
	"strconv"
	"sync"

	"github.com/mfakit/mfakit/mfa"
)

// DetailsResponse is the body of GET mfaDetails.
type DetailsResponse struct {
	Availables []mfa.Factor                    `json:"availables"`
	Details    map[mfa.Factor]mfa.FactorStatus `json:"details"`
}

// MFADetails serves GET mfaDetails: the caller's enrollment status.
func (h *Handlers) MFADetails() http.Handler {
	return h.userEndpoint(http.MethodGet, func(w http.ResponseWriter, r *http.Request, u User) {
		st, err := h.svc.Status(r.Context(), u.Username)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		setAnswerHeaders(w.Header(), "application/json", false)
		buf := answerBufs.Get().(*[]byte)
		*buf = appendDetails((*buf)[:0], st)
		w.Write(*buf)
		if cap(*buf) <= 4<<10 {
			answerBufs.Put(buf)
		}
	})
}

// answerBufs recycles the buffers answers are written from (a Write
// does not keep its slice).
var answerBufs = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

// appendDetails writes the mfaDetails body by hand: it is the hottest
// answer, and its shape (factor names are fixed identifiers) needs no
// reflection or escaping. TestDetailsJSON checks it against encoding/json.
func appendDetails(b []byte, st mfa.Status) []byte {
	b = append(b, `{"availables":[`...)
	for i, f := range st.Available {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, f...)
		b = append(b, '"')
	}
	b = append(b, `],"details":{`...)
	first := true
	for _, f := range []mfa.Factor{mfa.Authenticator, mfa.Email, mfa.WebAuthn} { // encoding/json's sorted key order
		d, ok := st.Details[f]
		if !ok {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, '"')
		b = append(b, f...)
		b = append(b, `":{"verified":`...)
		b = strconv.AppendBool(b, d.Verified)
		if d.Count != 0 {
			b = append(b, `,"count":`...)
			b = strconv.AppendInt(b, int64(d.Count), 10)
		}
		b = append(b, '}')
	}
	return append(b, "}}\n"...)
}
