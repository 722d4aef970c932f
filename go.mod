module github.com/mfakit/mfakit

go 1.26.0

require (
	github.com/boombuler/barcode v1.1.0
	github.com/go-playground/validator/v10 v10.30.6
	github.com/makiuchi-d/gozxing v0.1.1
	github.com/pquerna/otp v1.5.0
)

require (
	github.com/gabriel-vasile/mimetype v1.4.16 // indirect
	github.com/go-playground/locales v0.14.2 // indirect
	github.com/go-playground/universal-translator v0.18.2 // indirect
	github.com/leodido/go-urn v1.5.0 // indirect
	golang.org/x/crypto v0.58.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
	golang.org/x/text v0.43.0 // indirect
	golang.org/x/xerrors v0.0.0-20200804184101-5ec99f83aff1 // indirect
)
