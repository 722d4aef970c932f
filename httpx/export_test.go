package httpx

import "github.com/mfakit/mfakit/mfa"

// AppendDetails exposes appendDetails to the tests, on a Status: its
// details as entries, in a random order.
func AppendDetails(b []byte, st mfa.Status) []byte {
	var entries []mfa.FactorEntry
	for f, d := range st.Details {
		entries = append(entries, mfa.FactorEntry{Factor: f, FactorStatus: d})
	}
	return appendDetails(b, st.Available, entries)
}
