//go:build !race

package mfa

const raceEnabled = false
