package redisstore

import (
	"context"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// A script whose answer is an array is run as a redis.RawCmd and its
// answer read here, from the RESP text as it came: go-redis would parse
// each element into a value of its own, an allocation apiece, where this
// reads them all out of one string.

// replyError is an error reply of the server, read from RESP text (see
// Store.process).
type replyError string

func (e replyError) Error() string { return string(e) }

// RedisError marks replyError as an error of the server (redis.Error),
// so that redis.HasErrorPrefix and isNoScript see it.
func (e replyError) RedisError() {}

// runRaw runs sc with a's keys and arguments and returns its answer as
// RESP text, or the error the server answered.
func (s *Store) runRaw(ctx context.Context, sc *hotScript, a *args) (resp, error) {
	cmd, err := runScript(ctx, s, sc, a, redis.NewRawCmd)
	if err != nil {
		return resp{}, err
	}
	return resp{s: string(cmd.Val())}, nil
}

// resp reads a reply in RESP2 or RESP3. A reply it does not expect sets
// bad, and everything after reads as empty.
type resp struct {
	s   string
	bad bool
}

// header reads an element's header line and returns its type and the
// rest of the line.
func (r *resp) header() (byte, string) {
	i := strings.Index(r.s, "\r\n")
	if i < 1 {
		r.fail()
		return 0, ""
	}
	t, h := r.s[0], r.s[1:i]
	r.s = r.s[i+2:]
	return t, h
}

func (r *resp) fail() { r.bad, r.s = true, "" }

// err returns the error if the reply is an error reply (a simple or, in
// RESP3, a blob error), else nil.
func (r *resp) err() error {
	if r.s == "" || r.s[0] != '-' && r.s[0] != '!' {
		return nil
	}
	c := *r
	if t, h := c.header(); t == '-' {
		return replyError(h)
	}
	c.s = "$" + r.s[1:]
	if msg, ok := c.str(); ok {
		return replyError(msg)
	}
	return replyError("malformed error reply")
}

// str reads a string (bulk or simple); ok is false for a null.
func (r *resp) str() (v string, ok bool) {
	switch t, h := r.header(); t {
	case '+':
		return h, true
	case '_':
		return "", false
	case '$':
		n, err := strconv.Atoi(h)
		if err == nil && n == -1 {
			return "", false
		}
		if err != nil || n < 0 || len(r.s) < n+2 || r.s[n:n+2] != "\r\n" {
			break
		}
		v, r.s = r.s[:n], r.s[n+2:]
		return v, true
	}
	r.fail()
	return "", false
}

// array reads an array's header and returns its length; -1 for a null
// array.
func (r *resp) array() int {
	t, h := r.header()
	n, err := strconv.Atoi(h)
	switch {
	case t == '_':
		return -1
	case t != '*' || err != nil || n < -1:
		r.fail()
		return 0
	}
	return n
}

// isArray reports whether the next element is an array.
func (r *resp) isArray() bool { return strings.HasPrefix(r.s, "*") }
