package redisstore

import (
	"errors"
	"testing"

	"github.com/redis/go-redis/v9"
)

// resp reads RESP2 and RESP3 replies: strings, nulls, arrays and errors;
// anything malformed sets bad instead of reading past it.
func TestResp(t *testing.T) {
	r := resp{s: "*3\r\n$5\r\nOK 12\r\n*4\r\n$0\r\n\r\n$-1\r\n_\r\n+a b\r\n$3\r\n\r\n:\r\n"}
	if !r.isArray() || r.array() != 3 {
		t.Fatal("array header not read")
	}
	if v, ok := r.str(); v != "OK 12" || !ok {
		t.Fatalf("str %q %v", v, ok)
	}
	if !r.isArray() || r.array() != 4 {
		t.Fatal("inner array header not read")
	}
	for _, want := range []struct {
		v  string
		ok bool
	}{{"", true}, {"", false}, {"", false}, {"a b", true}, {"\r\n:", true}} {
		if v, ok := r.str(); v != want.v || ok != want.ok || r.bad {
			t.Fatalf("str %q %v, want %q %v (bad %v)", v, ok, want.v, want.ok, r.bad)
		}
	}
	if r.s != "" || r.bad {
		t.Fatalf("left %q (bad %v)", r.s, r.bad)
	}
	for _, bad := range []string{"", "$", "$3\r\nab", "$3\r\nabcd\r\n", "$x\r\n", "$-2\r\n", ":1\r\n", "*x\r\n", "\r\n"} {
		r := resp{s: bad}
		r.str()
		if !r.bad || r.s != "" {
			t.Errorf("%q read as a string (left %q)", bad, r.s)
		}
	}
	if r := (resp{s: "*-1\r\n"}); r.array() != -1 || r.bad {
		t.Error("null array not read")
	}
	if r := (resp{s: "$1\r\n"}); r.array() != 0 || !r.bad {
		t.Error("a string read as an array")
	}
}

// Error replies, simple and (RESP3) blob, become errors go-redis
// recognises; other replies are none.
func TestRespErr(t *testing.T) {
	for reply, want := range map[string]string{
		"-NOSCRIPT No matching script.\r\n":  "NOSCRIPT No matching script.",
		"!21\r\nNOSCRIPT no\r\nsuch one\r\n": "NOSCRIPT no\r\nsuch one",
		"!5\r\nab\r\n":                       "malformed error reply",
	} {
		r := resp{s: reply}
		err := r.err()
		if err == nil || err.Error() != want {
			t.Errorf("%q: error %v, want %q", reply, err, want)
			continue
		}
		var re redis.Error
		if !errors.As(err, &re) {
			t.Errorf("%q: %T is no redis.Error", reply, err)
		}
	}
	if r := (resp{s: "-NOSCRIPT x\r\n"}); !isNoScript(r.err()) {
		t.Error("NOSCRIPT not recognised")
	}
	for _, ok := range []string{"$2\r\nOK\r\n", "*0\r\n", ""} {
		if r := (resp{s: ok}); r.err() != nil {
			t.Errorf("%q: error %v", ok, r.err())
		}
	}
}
