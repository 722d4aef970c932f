package ctxvalue_test

import (
	"context"
	"testing"

	"github.com/mfakit/mfakit/internal/ctxvalue"
)

type keyA struct{}
type keyB struct{}
type other struct{}

func TestWithGet(t *testing.T) {
	base := context.WithValue(context.Background(), other{}, "kept")
	if _, ok := ctxvalue.Get[keyA, string](base); ok {
		t.Fatal("Get found a value that was never set")
	}
	a := ctxvalue.With[keyA](base, "a1")
	b := ctxvalue.With[keyB](a, 7)
	if v, ok := ctxvalue.Get[keyA, string](b); !ok || v != "a1" {
		t.Fatalf("keyA through keyB: %q %v", v, ok)
	}
	if v, ok := ctxvalue.Get[keyB, int](b); !ok || v != 7 {
		t.Fatalf("keyB: %d %v", v, ok)
	}
	if b.Value(other{}) != "kept" {
		t.Fatal("a parent's value was lost")
	}
	if v, _ := ctxvalue.Get[keyA, string](ctxvalue.With[keyA](b, "a2")); v != "a2" {
		t.Fatalf("the nearest value wins: got %q", v)
	}
	if _, ok := ctxvalue.Get[keyA, int](b); ok {
		t.Fatal("a value of another type under the same key was returned")
	}
	if n := testing.AllocsPerRun(100, func() { _ = ctxvalue.With[keyA](base, "x") }); n > 1 {
		t.Fatalf("With allocates %v times, want 1", n)
	}
}
