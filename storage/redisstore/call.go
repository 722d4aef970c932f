package redisstore

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// The hot path (Enrollments, ReserveFactor, ReserveAttempt, AcceptStep)
// runs its scripts through hotScript: one EVALSHA whose arguments are
// written into one string and passed as pointers into one array (a
// number or string boxed in an interface would cost an allocation each),
// answered by one string or integer parsed in place (see reply), or by
// RESP text read in place where the answer is an array (see resp). Each
// call allocates the argument string, the argument array, the command
// and its reply, nothing per argument or per field. Nothing a command
// refers to is reused after the call, so a client that sends it later
// (an autopipelining one, or a hook that keeps it) sees it unchanged.

// hotScript is a Lua script run by EVALSHA, falling back to EVAL once if
// the server lacks it (NOSCRIPT), as redis.Script.Run does.
type hotScript struct{ src, sha string }

func newHotScript(src string) *hotScript {
	h := sha1.Sum([]byte(src))
	return &hotScript{src: src, sha: hex.EncodeToString(h[:])}
}

// maxArgs bounds the keys and arguments of a hot script.
const maxArgs = 9

// numKeys are the numkeys arguments of EVALSHA, addressable so that a
// command refers to them without boxing a string.
var numKeys = [...]string{"0", "1", "2", "3", "4"}

// args builds the keys and arguments of one script call in one string:
// each key or argument is appended, then closed by end.
type args struct {
	b    strings.Builder
	ends [maxArgs]int
	n    int
	keys int
}

// start returns where argument i starts in a.b.
func (a *args) start(i int) int {
	if i == 0 {
		return 0
	}
	return a.ends[i-1]
}

func (a *args) end() {
	a.ends[a.n] = a.b.Len()
	a.n++
}

// key appends the key userKey(user, kind, name) returns.
func (a *args) key(prefix, user, kind, name string) {
	a.b.WriteString(prefix)
	a.b.WriteByte('{')
	writeB64(&a.b, user)
	a.b.WriteString("}:")
	a.b.WriteString(kind)
	a.b.WriteByte(':')
	a.b.WriteString(name)
	a.end()
	a.keys++
}

// requestKey appends the key requestKey(user, rq) returns for a fresh
// request id, and returns where that id lies in the string.
func (a *args) requestKey(prefix, user string) (from, to int) {
	a.b.WriteString(prefix)
	a.b.WriteByte('{')
	writeB64(&a.b, user)
	a.b.WriteString("}:r:")
	from = a.b.Len()
	a.requestID()
	to = a.b.Len()
	a.end()
	a.keys++
	return from, to
}

// requestID appends a fresh request id (see newRequestID).
func (a *args) requestID() {
	a.b.WriteString(requestPrefix)
	var d [20]byte
	a.b.Write(strconv.AppendUint(d[:0], requestCount.Add(1), 36))
}

func (a *args) str(s string) {
	a.b.WriteString(s)
	a.end()
}

func (a *args) int(v int64) {
	var d [20]byte
	a.b.Write(strconv.AppendInt(d[:0], v, 10))
	a.end()
}

// cmdArgs is the argument list of one command: the interfaces hold
// pointers into strs, which cost no allocation to box.
type cmdArgs struct {
	args [3 + maxArgs]any
	strs [maxArgs]string
}

// command returns the EVALSHA (or, with eval, EVAL) of sc on a's keys
// and arguments.
func (a *args) command(sc *hotScript, eval bool) []any {
	all := a.b.String()
	c := new(cmdArgs)
	if eval {
		c.args[0], c.args[1] = "eval", &sc.src
	} else {
		c.args[0], c.args[1] = "evalsha", &sc.sha
	}
	c.args[2] = &numKeys[a.keys]
	from := 0
	for i, to := range a.ends[:a.n] {
		c.strs[i] = all[from:to]
		c.args[3+i] = &c.strs[i]
		from = to
	}
	return c.args[:3+a.n]
}

// isNoScript reports whether err means the server lacks the script.
func isNoScript(err error) bool {
	return err != nil && (errors.Is(err, redis.ErrNoScript) || redis.HasErrorPrefix(err, "NOSCRIPT"))
}

// runInt runs sc with a's keys and arguments and returns its integer
// reply.
func (s *Store) runInt(ctx context.Context, sc *hotScript, a *args) (int64, error) {
	cmd, err := runScript(ctx, s, sc, a, redis.NewIntCmd)
	return cmd.Val(), err
}

// runScript sends sc as EVALSHA in a command made by newCmd, and once
// more as EVAL if the server lacks the script.
func runScript[C redis.Cmder](ctx context.Context, s *Store, sc *hotScript, a *args, newCmd func(context.Context, ...any) C) (C, error) {
	cmd := newCmd(ctx, a.command(sc, false)...)
	cmd.SetFirstKeyPos(3)
	err := s.process(ctx, cmd)
	if isNoScript(err) {
		cmd = newCmd(ctx, a.command(sc, true)...)
		cmd.SetFirstKeyPos(3)
		err = s.process(ctx, cmd)
	}
	return cmd, err
}

// process sends cmd on the hot path (s.hot). The autopipeliner does not
// watch the context of a command it has queued, so a context that is
// already done stops the command here, before anything is sent. A
// redis.RawCmd keeps an error reply in its text; process returns it as
// the error, as go-redis does for the other commands.
func (s *Store) process(ctx context.Context, cmd redis.Cmder) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.hot.Process(ctx, cmd); err != nil {
		return err
	}
	if raw, ok := cmd.(*redis.RawCmd); ok {
		if v := raw.Val(); len(v) > 0 && (v[0] == '-' || v[0] == '!') {
			r := resp{s: string(v)}
			return r.err()
		}
	}
	return nil
}

// Request ids (see scripts.go) are a random prefix drawn once per process
// and a counter: unique across the clients of one Redis as the random
// ids of rand.Text are, without drawing randomness per request.
var (
	requestPrefix = rand.Text()[:16] // 80 bits
	requestCount  atomic.Uint64
)

// maxRequestID bounds the length of a request id: the prefix and a
// counter in base 36.
const maxRequestID = 16 + 13

const b64Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// writeB64 writes b64.EncodeToString([]byte(s)) to b.
func writeB64(b *strings.Builder, s string) {
	for ; len(s) >= 3; s = s[3:] {
		v := uint(s[0])<<16 | uint(s[1])<<8 | uint(s[2])
		b.WriteByte(b64Alphabet[v>>18&63])
		b.WriteByte(b64Alphabet[v>>12&63])
		b.WriteByte(b64Alphabet[v>>6&63])
		b.WriteByte(b64Alphabet[v&63])
	}
	switch len(s) {
	case 2:
		v := uint(s[0])<<16 | uint(s[1])<<8
		b.WriteByte(b64Alphabet[v>>18&63])
		b.WriteByte(b64Alphabet[v>>12&63])
		b.WriteByte(b64Alphabet[v>>6&63])
	case 1:
		v := uint(s[0]) << 16
		b.WriteByte(b64Alphabet[v>>18&63])
		b.WriteByte(b64Alphabet[v>>12&63])
	}
}

// reply reads a hot script's string reply: words separated by spaces.
type reply struct {
	s   string
	bad bool
}

// word returns the next word.
func (r *reply) word() string {
	s := strings.TrimPrefix(r.s, " ")
	i := strings.IndexByte(s, ' ')
	if i < 0 {
		i = len(s)
	}
	r.s = s[i:]
	return s[:i]
}

// num returns the next word as a number.
func (r *reply) num() int64 {
	n, err := strconv.ParseInt(r.word(), 10, 64)
	if err != nil {
		r.bad = true
	}
	return n
}

// more reports whether fields remain.
func (r *reply) more() bool { return r.s != "" }

// parseNum reads a decimal number, 0 if v is none.
func parseNum(v string) int64 {
	n, _ := strconv.ParseInt(v, 10, 64)
	return n
}
