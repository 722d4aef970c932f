package mfa

import (
	"bytes"
	"image/png"

	"github.com/boombuler/barcode"
	"github.com/boombuler/barcode/qr"
)

// QRSize is the default width and height in pixels of a QR code PNG.
const QRSize = 256

// QRPNG renders the key URI as a QR code PNG of size×size pixels, with
// medium error correction.
func (k AuthenticatorKey) QRPNG(size int) ([]byte, error) {
	code, err := qr.Encode(k.URI, qr.M, qr.Auto)
	if err != nil {
		return nil, err
	}
	if code, err = barcode.Scale(code, size, size); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, code); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
