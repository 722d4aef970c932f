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
		var entries [4]mfa.FactorEntry
		st, err := h.svc.AppendStatus(r.Context(), u.Username, entries[:0])
		if err != nil {
			h.fail(w, r, err)
			return
		}
		setAnswerHeaders(w.Header(), "application/json", false)
		buf := answerBufs.Get().(*[]byte)
		*buf = appendDetails((*buf)[:0], h.factors, st)
		w.Write(*buf)
		if cap(*buf) <= 4<<10 {
			answerBufs.Put(buf)
		}
	})
}

// answerBufs recycles the buffers answers are written from (a Write
// does not keep its slice).
var answerBufs = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

// appendDetails writes the mfaDetails body, DetailsResponse, by hand from
// the enabled factors and the user's entries (mfa.Service.AppendStatus):
// it is the hottest answer, and its shape (factor names are fixed
// identifiers) needs no reflection or escaping. As in Status.Details, the
// last entry of a factor counts. TestDetailsJSON checks it against
// encoding/json.
func appendDetails(b []byte, available []mfa.Factor, entries []mfa.FactorEntry) []byte {
	b = append(b, `{"availables":[`...)
	for i, f := range available {
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
		found := false
		var d mfa.FactorStatus
		for _, e := range entries {
			if e.Factor == f {
				found, d = true, e.FactorStatus
			}
		}
		if !found {
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
