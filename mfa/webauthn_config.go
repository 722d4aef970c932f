package mfa

import (
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
)

// WebAuthnConfig describes the relying party (RP) of the WEBAUTHN factor:
// the site passkeys are bound to, and the origins its pages are served
// from (S31).
type WebAuthnConfig struct {
	// RPID is the relying party ID: the site's registrable domain (or a
	// domain under it), such as "example.com", or "localhost" for local
	// development. Lower case, no scheme, port or path. Required. Every
	// origin's host must be RPID or a subdomain of it; a passkey made for
	// one RP ID works on no other, so choose it once.
	RPID string
	// RPDisplayName is the site's name as authenticators show it. Default
	// Config.Issuer.
	RPDisplayName string
	// RPOrigins are the origins the kit accepts ceremonies from:
	// "https://example.com", "https://login.example.com:8443". Each is an
	// absolute https origin without path, query or fragment; http only
	// for localhost (browsers offer WebAuthn nowhere else without TLS).
	// Required.
	RPOrigins []string
	// UserVerification asks authenticators to verify the user (PIN,
	// biometrics): "required", "preferred" or "discouraged". Default
	// "preferred": asked for where the authenticator can, not refused
	// where it cannot (user presence is always required).
	UserVerification string
	// Attestation is the attestation conveyance asked for at
	// registration: "none", "indirect", "direct" or "enterprise". Default
	// "none": the kit keeps no attestation trust store, so asking for more
	// proves nothing it would check and costs users a privacy prompt.
	Attestation string
}

// withDefaults checks c and fills in its defaults; issuer is the
// Config's Issuer.
func (c WebAuthnConfig) withDefaults(issuer string) (WebAuthnConfig, error) {
	if c.RPID == "" {
		return c, fmt.Errorf("mfa: WebAuthn.RPID is required (the site's domain, e.g. \"example.com\", or \"localhost\")")
	}
	if err := protocol.ValidateRPID(c.RPID); err != nil {
		return c, fmt.Errorf("mfa: WebAuthn.RPID %q is not a domain: %v", c.RPID, err)
	}
	if c.RPID != strings.ToLower(c.RPID) || strings.HasSuffix(c.RPID, ".") {
		return c, fmt.Errorf("mfa: WebAuthn.RPID %q must be lower case, without a trailing dot", c.RPID)
	}
	if !strings.Contains(c.RPID, ".") && c.RPID != "localhost" {
		return c, fmt.Errorf("mfa: WebAuthn.RPID %q is a top-level domain; use the site's registrable domain (or \"localhost\")", c.RPID)
	}
	if len(c.RPOrigins) == 0 {
		return c, fmt.Errorf("mfa: WebAuthn.RPOrigins is required (e.g. \"https://%s\")", c.RPID)
	}
	origins := make([]string, len(c.RPOrigins))
	for i, o := range c.RPOrigins {
		canon, err := checkOrigin(o, c.RPID)
		if err != nil {
			return c, err
		}
		origins[i] = canon
	}
	c.RPOrigins = origins
	if c.RPDisplayName == "" {
		c.RPDisplayName = issuer
	}
	switch c.UserVerification {
	case "":
		c.UserVerification = string(protocol.VerificationPreferred)
	case string(protocol.VerificationRequired), string(protocol.VerificationPreferred), string(protocol.VerificationDiscouraged):
	default:
		return c, fmt.Errorf("mfa: WebAuthn.UserVerification must be required, preferred or discouraged, got %q", c.UserVerification)
	}
	switch c.Attestation {
	case "":
		c.Attestation = string(protocol.PreferNoAttestation)
	case string(protocol.PreferNoAttestation), string(protocol.PreferIndirectAttestation),
		string(protocol.PreferDirectAttestation), string(protocol.PreferEnterpriseAttestation):
	default:
		return c, fmt.Errorf("mfa: WebAuthn.Attestation must be none, indirect, direct or enterprise, got %q", c.Attestation)
	}
	return c, nil
}

// checkOrigin checks that o is an absolute http(s) origin whose host is
// rpID or under it, and returns it in canonical form (lower case).
func checkOrigin(o, rpID string) (string, error) {
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("mfa: WebAuthn.RPOrigins: %q %s", o, why)
	}
	u, err := url.Parse(o)
	switch {
	case err != nil:
		return bad("is not a URL")
	case u.Scheme != "https" && u.Scheme != "http":
		return bad("must start with https:// (or http:// for localhost)")
	case u.Host == "" || u.Opaque != "":
		return bad("has no host")
	case u.User != nil:
		return bad("must not carry a user name or password")
	case u.Path != "" || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(o, "?") || strings.HasSuffix(o, "#"):
		return bad("must be an origin: scheme, host and port only, without a path (not even \"/\")")
	}
	host := strings.ToLower(u.Hostname())
	if net.ParseIP(host) != nil {
		return bad("has an IP address as host; WebAuthn needs a domain name (use localhost locally)")
	}
	local := host == "localhost" || strings.HasSuffix(host, ".localhost")
	if u.Scheme == "http" && !local {
		return bad("must use https: browsers offer WebAuthn over http only on localhost")
	}
	if host != rpID && !strings.HasSuffix(host, "."+rpID) {
		return bad(fmt.Sprintf("is not on the RP ID %q: its host must be %s or a subdomain of it", rpID, rpID))
	}
	canon := strings.ToLower(u.Scheme) + "://" + host
	if p := u.Port(); p != "" {
		canon += ":" + p
	}
	return canon, nil
}

// relyingParty returns the go-webauthn relying party of c. Challenges are
// the kit's own (kept in the Store, expired by Config.Now), so the
// library's timeouts are only the hint sent to the browser.
func (c WebAuthnConfig) relyingParty() (*webauthn.WebAuthn, error) {
	uv := protocol.UserVerificationRequirement(c.UserVerification)
	return webauthn.New(&webauthn.Config{
		RPID:                  c.RPID,
		RPDisplayName:         c.RPDisplayName,
		RPOrigins:             c.RPOrigins,
		AttestationPreference: protocol.ConveyancePreference(c.Attestation),
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			RequireResidentKey: protocol.ResidentKeyNotRequired(),
			ResidentKey:        protocol.ResidentKeyRequirementPreferred,
			UserVerification:   uv,
		},
		Timeouts: webauthn.TimeoutsConfig{
			Login:        webauthn.TimeoutConfig{Timeout: webAuthnChallengeTTL, TimeoutUVD: webAuthnChallengeTTL},
			Registration: webauthn.TimeoutConfig{Timeout: webAuthnChallengeTTL, TimeoutUVD: webAuthnChallengeTTL},
		},
		// The kit asks for no extension. An output nobody asked for is
		// ignored rather than refused: some password managers add them,
		// and the kit acts on none.
		ExtensionsUnsolicitedOutputPolicy: protocol.UnsolicitedOutputPolicyIgnore,
	})
}
