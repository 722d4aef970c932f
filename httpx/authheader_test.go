package httpx_test

import (
	"net/http"
	"testing"

	"github.com/mfakit/mfakit/storage/memstore"
)

// Authorization is a singleton header: a request with several is
// ambiguous (a proxy may read the last where the kit would read the
// first) and is refused as carrying wrong credentials, even when every
// one of them is valid on its own (found by the outside attack on the
// demo, which acted as the first header's user).
func TestSeveralAuthorizationHeaders(t *testing.T) {
	e := newEnv(t, memstore.New())
	get := func(values ...string) int {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, e.srv.URL+"/oauth/users/mfaDetails", nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range values {
			req.Header.Add("Authorization", v)
		}
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := get("Bearer alice-token"); got != http.StatusOK {
		t.Fatalf("one header: %d, want 200", got)
	}
	for _, c := range [][]string{
		{"Bearer alice-token", "Bearer alice-token"},
		{"Bearer alice-token", "Bearer bob-token"},
		{"Bearer alice-token", ""},
		{"Bearer alice-token", "Basic Y2xpZW50OnNlY3JldA=="},
	} {
		if got := get(c...); got != http.StatusUnauthorized {
			t.Errorf("headers %q: %d, want 401", c, got)
		}
	}
}
