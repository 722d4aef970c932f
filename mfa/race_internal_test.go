//go:build race

package mfa

// raceEnabled: the race detector is on, and sync.Pool drops some of what
// it is given, so pooled paths allocate now and then.
const raceEnabled = true
