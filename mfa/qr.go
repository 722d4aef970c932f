package mfa

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"sync"

	"github.com/boombuler/barcode/qr"
)

// QRSize is the default width and height in pixels of a QR code PNG.
const QRSize = 256

// quietZone is the white border around a QR code, in modules (ISO/IEC
// 18004 asks for 4).
const quietZone = 4

var qrPalette = color.Palette{color.White, color.Black}

// qrEncoder reuses its compressor between renders (a new zlib writer
// costs more than compressing a QR code).
var qrEncoder = png.Encoder{CompressionLevel: png.BestSpeed, BufferPool: &pngBuffers{}}

type pngBuffers struct{ pool sync.Pool }

// Get implements png.EncoderBufferPool.
func (p *pngBuffers) Get() *png.EncoderBuffer {
	b, _ := p.pool.Get().(*png.EncoderBuffer)
	return b
}

// Put implements png.EncoderBufferPool.
func (p *pngBuffers) Put(b *png.EncoderBuffer) { p.pool.Put(b) }

// QRPNG renders the key URI as a QR code PNG of size×size pixels, with
// low error correction (see qrLevel) and a quiet zone. boombuler/barcode encodes the
// module matrix; the pixels are written straight into a 1-bit paletted
// image (whole modules, centred), instead of scaling through image.At per
// pixel, which keeps the PNG small and the render fast.
func (k AuthenticatorKey) QRPNG(size int) ([]byte, error) {
	return renderQR(k.URI, size, qrLevel)
}

// qrLevel is error correction level L (7%): a key URI shown on a screen
// does not get smudged, and the lower level needs fewer, larger modules,
// which phone cameras read more easily and which render in half the time.
const qrLevel = qr.L

func renderQR(uri string, size int, level qr.ErrorCorrectionLevel) ([]byte, error) {
	code, err := qr.Encode(uri, level, qr.Auto)
	if err != nil {
		return nil, err
	}
	n := code.Bounds().Dx()
	module := size / (n + 2*quietZone)
	if module < 1 {
		return nil, fmt.Errorf("mfa: a %d-module QR code does not fit in %d pixels", n, size)
	}
	offset := (size - n*module) / 2
	img := image.NewPaletted(image.Rect(0, 0, size, size), qrPalette) // all white (index 0)
	for y := range n {
		row := img.Pix[(offset+y*module)*img.Stride:]
		for x := range n {
			if r, _, _, _ := code.At(x, y).RGBA(); r == 0 { // a dark module
				start := offset + x*module
				for i := range module {
					row[start+i] = 1
				}
			}
		}
		// The other pixel rows of this module row repeat the first.
		for i := 1; i < module; i++ {
			copy(img.Pix[(offset+y*module+i)*img.Stride:][:size], row[:size])
		}
	}
	var buf bytes.Buffer
	buf.Grow(1024)
	if err := qrEncoder.Encode(&buf, img); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
