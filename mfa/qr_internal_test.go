package mfa

import (
	"bytes"
	"image/png"
	"testing"

	"github.com/boombuler/barcode/qr"
	"github.com/pquerna/otp"
)

// BenchmarkQRPNG compares, side by side, the generic path (pquerna's
// key.Image: boombuler at level M, scaled through image.At, then
// png.Encode) with mfakit's direct 1-bit render at the same level M and at
// its default level L.
func BenchmarkQRPNG(b *testing.B) {
	uri := "otpauth://totp/Acme:alice@example.com?algorithm=SHA1&digits=6&issuer=Acme&period=30&secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
	b.Run("generic", func(b *testing.B) {
		key, err := otp.NewKeyFromURL(uri)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		var size int
		for b.Loop() {
			img, err := key.Image(QRSize, QRSize)
			if err != nil {
				b.Fatal(err)
			}
			var buf bytes.Buffer
			if err := png.Encode(&buf, img); err != nil {
				b.Fatal(err)
			}
			size = buf.Len()
		}
		b.ReportMetric(float64(size), "png-bytes")
	})
	for name, level := range map[string]qr.ErrorCorrectionLevel{"mfakit-M": qr.M, "mfakit-L-default": qrLevel} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			var size int
			for b.Loop() {
				out, err := renderQR(uri, QRSize, level)
				if err != nil {
					b.Fatal(err)
				}
				size = len(out)
			}
			b.ReportMetric(float64(size), "png-bytes")
		})
	}
}
