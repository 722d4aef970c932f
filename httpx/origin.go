package httpx

import (
	"errors"
	"fmt"
	"net/http"
)

// ErrCrossOrigin is the error of a state-changing request that a browser
// sent from another origin with no Authorization header (see
// Config.CrossOrigin): it is answered 403 cross_origin.
var ErrCrossOrigin = errors.New("httpx: cross-origin request refused")

// checkOrigin refuses a cross-origin browser request to a state-changing
// route (CSRF) by Config.CrossOrigin, unless it carries an Authorization
// header. A browser attaches cookies to a cross-site request by itself,
// but a page of another site cannot put the user's token in an
// Authorization header: it does not know it. So a request with one was not
// forged by another site, and cross-origin single-page apps with Bearer
// tokens keep working. (Basic credentials are an OAuth client's, public
// and proving nothing about a user, S23.) GET and HEAD are never checked:
// they change nothing.
func (h *Handlers) checkOrigin(r *http.Request) error {
	if v, one := authorization(r.Header); one && v != "" {
		return nil
	}
	if err := h.cfg.CrossOrigin.Check(r); err != nil {
		return fmt.Errorf("%w: %w", ErrCrossOrigin, err)
	}
	return nil
}
