package httpx_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"strings"
	"testing"

	"github.com/boombuler/barcode/qr"

	"github.com/mfakit/mfakit/httpx"
	"github.com/mfakit/mfakit/mfa"
)

// kitQRLevel is the error correction level mfakit renders at (mfa's
// qrLevel, L). If the kit changes it, TestQRPNGMatchesEncoder says so.
const kitQRLevel = qr.L

// quietZone is the least white border ISO/IEC 18004 asks for, in modules.
const quietZone = 4

// checkQRModules compares a QR PNG with boombuler's matrix for uri, module
// by module, without a decoder: the dark pixels' bounding box must be the
// n×n code in whole square modules, every pixel inside must have the
// colour of its module, and every pixel outside (the quiet zone, at least
// four modules on each side) must be white.
func checkQRModules(t *testing.T, pngBytes []byte, uri string, size int) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(pngBytes))
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b != image.Rect(0, 0, size, size) {
		t.Fatalf("QR is %v, want %dx%d", b, size, size)
	}
	code, err := qr.Encode(uri, kitQRLevel, qr.Auto)
	if err != nil {
		t.Fatal(err)
	}
	n := code.Bounds().Dx()

	// Every pixel is pure black or pure white.
	dark := make([][]bool, size)
	box := image.Rectangle{Min: image.Pt(size, size)}
	for y := range size {
		dark[y] = make([]bool, size)
		for x := range size {
			switch g := color.Gray16Model.Convert(img.At(x, y)).(color.Gray16).Y; g {
			case 0:
				dark[y][x] = true
				box = box.Union(image.Rect(x, y, x+1, y+1))
			case 0xffff:
			default:
				t.Fatalf("pixel (%d,%d) is grey %#x, not black or white", x, y, g)
			}
		}
	}
	// The finder patterns make the code's first and last rows and columns
	// dark somewhere, so the dark box is the code itself.
	if box.Dx() != box.Dy() || box.Dx()%n != 0 {
		t.Fatalf("dark pixels span %v: not a %d-module code in whole modules (level L encoding of %q)", box, n, uri)
	}
	m := box.Dx() / n
	left, top := box.Min.X, box.Min.Y
	right, bottom := size-box.Max.X, size-box.Max.Y
	if min(left, top, right, bottom) < quietZone*m {
		t.Fatalf("quiet zone %d/%d/%d/%d px, want at least %d modules of %d px", left, top, right, bottom, quietZone, m)
	}
	if left-right > 1 || right-left > 1 || top-bottom > 1 || bottom-top > 1 {
		t.Fatalf("code not centred: margins %d/%d/%d/%d px", left, top, right, bottom)
	}
	if (n+2*quietZone)*(m+1) <= size {
		t.Fatalf("modules of %d px, but %d px would still fit %d modules and the quiet zone in %d px", m, m+1, n, size)
	}

	// Module by module, then every pixel of the module.
	for my := -quietZone; my < n+quietZone; my++ {
		for mx := -quietZone; mx < n+quietZone; mx++ {
			want := false // the quiet zone is white
			if mx >= 0 && my >= 0 && mx < n && my < n {
				r, _, _, _ := code.At(mx, my).RGBA()
				want = r == 0
			}
			for py := range m {
				for px := range m {
					x, y := left+mx*m+px, top+my*m+py
					if dark[y][x] != want {
						t.Fatalf("module (%d,%d) of %d: pixel (%d,%d) dark=%v, the encoder says dark=%v", mx, my, n, x, y, dark[y][x], want)
					}
				}
			}
		}
	}
	// And nothing dark beyond the four-module quiet zone.
	for y := range size {
		for x := range size {
			if dark[y][x] && !image.Pt(x, y).In(box) {
				t.Fatalf("dark pixel (%d,%d) outside the code %v", x, y, box)
			}
		}
	}
}

// TestQRPNGMatchesEncoder renders key URIs of many lengths (so many QR
// versions and module sizes) at several sizes and checks every module
// against the encoder's matrix.
func TestQRPNGMatchesEncoder(t *testing.T) {
	t.Parallel()
	const secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
	for _, account := range []string{"a@b.c", "alice@example.com", strings.Repeat("x", 40) + "@example.com", strings.Repeat("long.name", 12) + "@example.com"} {
		uri := fmt.Sprintf("otpauth://totp/Acme:%s?algorithm=SHA1&digits=6&issuer=Acme&period=30&secret=%s", account, secret)
		for _, size := range []int{mfa.QRSize, 200, 301, 512} {
			t.Run(fmt.Sprintf("%d-%d", len(uri), size), func(t *testing.T) {
				t.Parallel()
				out, err := mfa.AuthenticatorKey{URI: uri}.QRPNG(size)
				if err != nil {
					t.Fatal(err)
				}
				checkQRModules(t, out, uri, size)
			})
		}
	}
}

// TestQRHandlerPNGMatchesEncoder checks the PNG the handler serves in its
// JSON answer against the encoder's matrix of the otpauthUrl beside it.
func TestQRHandlerPNGMatchesEncoder(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	for _, token := range []string{"alice-token", "bob-token", "admin-token"} {
		r := e.do(request{method: "PUT", path: qrPath, token: token, accept: "application/json"})
		expect(t, r, 200, "")
		var qrr httpx.QRCodeResponse
		if err := json.Unmarshal(r.body, &qrr); err != nil {
			t.Fatal(err)
		}
		data, ok := strings.CutPrefix(qrr.QRCode, "data:image/png;base64,")
		if !ok {
			t.Fatalf("qrCode = %.40s", qrr.QRCode)
		}
		pngBytes, err := base64.StdEncoding.DecodeString(data)
		if err != nil {
			t.Fatal(err)
		}
		checkQRModules(t, pngBytes, qrr.OTPAuthURL, mfa.QRSize)
	}
}
