// Package ctxvalue carries one typed value in a context, as
// context.WithValue does, in one allocation: WithValue also boxes the
// value in an interface, a second allocation, and the kit makes such a
// context for every request (the user, the request's audit details).
package ctxvalue

import "context"

// valueCtx is the context With returns. The key a value is stored under
// is the zero value of K, an unexported empty struct type of the package
// that stores it, so no other package can read or overwrite it.
type valueCtx[K comparable, V any] struct {
	context.Context
	v V
}

// Value answers K's zero value with the context itself (see Get), and
// every other key as the parent does.
func (c *valueCtx[K, V]) Value(key any) any {
	var k K
	if key == any(k) {
		return c
	}
	return c.Context.Value(key)
}

// With returns a child of parent that carries v under the key K{} (the
// zero value of K, which should be an unexported empty struct type).
func With[K comparable, V any](parent context.Context, v V) context.Context {
	return &valueCtx[K, V]{Context: parent, v: v}
}

// Get returns the value With stored under K's zero value in ctx or an
// ancestor, and whether there was one.
func Get[K comparable, V any](ctx context.Context) (V, bool) {
	var k K
	if c, ok := ctx.Value(k).(*valueCtx[K, V]); ok {
		return c.v, true
	}
	var zero V
	return zero, false
}
