package mfa

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mfakit/mfakit/storage"
)

// passkeyName names a credential in a change notice.
func passkeyName(name string) string { return "a passkey named \u201c" + name + "\u201d" }

// cleanName checks a credential name a user chose: at most
// storage.MaxCredentialNameLen bytes of UTF-8 without control or format
// characters (no line breaks, no bidi overrides: names appear in emails).
// Surrounding space is trimmed; "" is allowed (a name is then made up).
func cleanName(name string) (string, error) {
	name = strings.TrimSpace(name)
	if len(name) > storage.MaxCredentialNameLen || !utf8.ValidString(name) {
		return "", ErrInvalidName
	}
	for _, r := range name {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return "", ErrInvalidName
		}
	}
	return name, nil
}

// truncateUTF8 cuts s to at most n bytes, on a rune boundary.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// knownAuthenticators names well-known authenticators by AAGUID, for the
// name of a credential registered without one. The AAGUIDs are the ones
// their makers publish.
var knownAuthenticators = map[string]string{
	"ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4": "Google Password Manager",
	"adce0002-35bc-c60a-648b-0b25f1f05503": "Chrome on Mac",
	"08987058-cadc-4b81-b6e1-30de50dcbe96": "Windows Hello",
	"9ddd1817-af5a-4672-a2b9-3e3dd95000a9": "Windows Hello",
	"6028b017-b1d4-4c02-b4b3-afcdafc96bb2": "Windows Hello",
	"fbfc3007-154e-4ecc-8c0b-6e020557d7bd": "iCloud Keychain",
	"dd4ec289-e01d-41c9-bb89-70fa845d4bf2": "iCloud Keychain",
	"bada5566-a7aa-401f-bd96-45619a55120d": "1Password",
	"d548826e-79b4-db40-a3d8-11116f7e8349": "Bitwarden",
	"531126d6-e717-415c-9320-3d9aa6981239": "Dashlane",
	"b84e4048-15dc-4dd0-8640-f4f60813c8af": "NordPass",
	"0ea242b4-43c4-4a1b-8b17-dd6d0b6baec6": "Keeper",
	"53414d53-554e-4700-0000-000000000000": "Samsung Pass",
}

// authenticatorName is the name of the authenticator with aaguid, or
// "Passkey".
func authenticatorName(aaguid []byte) string {
	if len(aaguid) == 16 {
		id := fmt.Sprintf("%x-%x-%x-%x-%x", aaguid[0:4], aaguid[4:6], aaguid[6:8], aaguid[8:10], aaguid[10:16])
		if name, ok := knownAuthenticators[id]; ok {
			return name
		}
	}
	return "Passkey"
}
