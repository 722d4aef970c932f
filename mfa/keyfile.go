package mfa

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// LoadKeyringHex returns a Keyring of keys given as hex strings, by id,
// whose key named current seals new values: keys held as text, in a
// secret manager or environment variables (see KeyringFromEnv). Each key
// is KeySize bytes written as 2*KeySize hex digits; surrounding white
// space is ignored. An error names the id of a bad key, never its value.
func LoadKeyringHex(current string, keys map[string]string) (*Keyring, error) {
	return loadHex(current, keys, func(id string) string { return fmt.Sprintf("key %q", id) })
}

// loadHex decodes keys and builds the Keyring; name says where a key came
// from in an error.
func loadHex(current string, keys map[string]string, name func(id string) string) (*Keyring, error) {
	if _, ok := keys[current]; !ok {
		return nil, fmt.Errorf("mfa: current key %q is not among the keys", current)
	}
	raw := make(map[string][]byte, len(keys))
	defer clearKeys(raw)
	for _, id := range slices.Sorted(maps.Keys(keys)) {
		key, err := decodeHexKey(keys[id])
		if err != nil {
			return nil, fmt.Errorf("mfa: %s: %w", name(id), err)
		}
		raw[id] = key
	}
	return NewKeyring(current, raw)
}

// decodeHexKey decodes one key. Its errors never quote s, not even the
// one bad character: they say what is wrong, not where.
func decodeHexKey(s string) ([]byte, error) {
	key, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil {
		clear(key) // what was decoded before the bad digit
		return nil, errors.New("not valid hex")
	}
	if len(key) != KeySize {
		clear(key)
		return nil, fmt.Errorf("%d bytes, want %d (%d hex digits)", len(key), KeySize, 2*KeySize)
	}
	return key, nil
}

// clearKeys overwrites decoded keys once the Keyring holds its ciphers.
func clearKeys(keys map[string][]byte) {
	for _, k := range keys {
		clear(k)
	}
}

// DefaultKeyEnvPrefix is the prefix KeyringFromEnv reads when given "".
const DefaultKeyEnvPrefix = "MFAKIT_KEY_"

// KeyringFromEnv returns the Keyring held in environment variables whose
// names start with prefix (DefaultKeyEnvPrefix, "MFAKIT_KEY_", when
// prefix is ""):
//
//	MFAKIT_KEY_CURRENT=K2                 the id of the current key
//	MFAKIT_KEY_K2=<64 hex digits>         one variable per key: prefix + id
//	MFAKIT_KEY_K1=<64 hex digits>         an older key, kept to open what it sealed
//
// Every variable whose name starts with prefix is a key, named by the rest
// of its name, except prefix+"CURRENT", which names the current key; so no
// key may be called CURRENT, and the prefix must not be shared with other
// settings. Keys are as for LoadKeyringHex. An error names the variable of
// a bad key, never its value. The variables stay set: unset them after
// the call if child processes must not inherit them.
func KeyringFromEnv(prefix string) (*Keyring, error) {
	if prefix == "" {
		prefix = DefaultKeyEnvPrefix
	}
	current := os.Getenv(prefix + "CURRENT")
	if current == "" {
		return nil, fmt.Errorf("mfa: %sCURRENT is not set: it names the current key, whose value is in %s<id>", prefix, prefix)
	}
	keys := map[string]string{}
	for _, kv := range os.Environ() {
		name, value, _ := strings.Cut(kv, "=")
		if id, ok := strings.CutPrefix(name, prefix); ok && id != "" && id != "CURRENT" {
			keys[id] = value
		}
	}
	if _, ok := keys[current]; !ok {
		return nil, fmt.Errorf("mfa: %sCURRENT names key %q, but %s%s is not set", prefix, current, prefix, current)
	}
	return loadHex(current, keys, func(id string) string { return "environment variable " + prefix + id })
}

// maxKeyFile bounds what LoadOrCreateKeyFile reads: a key line is under
// 100 bytes.
const maxKeyFile = 64 << 10

// keyFileSettle is how long a reader waits for an empty key file to be
// filled by the process that is creating it (only where the file system
// has no hard links, see createKeyFile).
var keyFileSettle = time.Second

// LoadOrCreateKeyFile returns the Keyring kept in the key file at path,
// creating the file with one fresh random key if it does not exist. The
// folder must exist.
//
// The file is text, one key per line:
//
//	# comment lines and blank lines are ignored
//	k2 6f1c...(64 hex digits)
//	k1 09ab...(64 hex digits)
//
// Each key line is an id (1 to 32 bytes, no white space, not starting
// with '#'), white space, and the key as 2*KeySize hex digits. The first
// key line is the current key, which seals new values; the others only
// open and check what they made before (S25). To rotate, add a line with
// a new id and a fresh key at the top (openssl rand -hex 32 makes one) and
// keep the old lines. An error names the line and id of a bad key, never
// its value.
//
// The file must be readable by its owner only (mode 0600 or 0400):
// LoadOrCreateKeyFile refuses one that grants any permission to group or
// others, saying to run chmod 600. (Windows has no such mode bits; there
// the check is skipped and the folder's ACL is what protects the file.)
//
// A new file is written in full, synced, and then linked into place
// without replacing anything, so several processes starting together with
// no file end up with one key: the first to link wins and the others read
// its file. It gets mode 0600 and an id like "k20260102-1a2b3c4d".
func LoadOrCreateKeyFile(path string) (*Keyring, error) {
	for range 3 {
		k, err := readKeyFile(path)
		if !errors.Is(err, fs.ErrNotExist) {
			return k, err
		}
		k, err = createKeyFile(path)
		if !errors.Is(err, fs.ErrExist) {
			return k, err
		}
		// Another process created it meanwhile: read that one.
	}
	return nil, fmt.Errorf("mfa: key file %s: it keeps appearing and vanishing", path)
}

// readKeyFile reads and parses the key file at path, refusing one others
// may read. Its error wraps fs.ErrNotExist when there is no file.
func readKeyFile(path string) (*Keyring, error) {
	deadline := time.Now().Add(keyFileSettle)
	for {
		data, err := readPrivateFile(path)
		if err != nil {
			return nil, err
		}
		if len(data) == 0 && time.Now().Before(deadline) {
			// Being written by its creator (createKeyFile's fallback).
			time.Sleep(10 * time.Millisecond)
			continue
		}
		k, err := parseKeyFile(data)
		clear(data)
		if err != nil {
			return nil, fmt.Errorf("mfa: key file %s: %w", path, err)
		}
		return k, nil
	}
}

func readPrivateFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("mfa: key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("mfa: key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("mfa: key file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); runtime.GOOS != "windows" && perm&0o077 != 0 {
		return nil, fmt.Errorf("mfa: key file %s has mode %04o, which lets other users read or change the keys; "+
			"make it readable by its owner only: chmod 600 %s", path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("mfa: key file: %w", err)
	}
	if len(data) > maxKeyFile {
		clear(data)
		return nil, fmt.Errorf("mfa: key file %s is larger than %d bytes", path, maxKeyFile)
	}
	return data, nil
}

// parseKeyFile reads the format LoadOrCreateKeyFile documents.
func parseKeyFile(data []byte) (*Keyring, error) {
	keys := map[string][]byte{}
	defer clearKeys(keys)
	current := ""
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		switch {
		case len(fields) == 1:
			return nil, fmt.Errorf(`line %d: want "id hexkey", found one field (a key without an id? write an id before it, as in "k1 <key>")`, i+1)
		case len(fields) != 2:
			return nil, fmt.Errorf(`line %d: want "id hexkey", found %d fields`, i+1, len(fields))
		}
		id := fields[0]
		if len(id) > 32 { // not quoted: it might be a key written first
			return nil, fmt.Errorf("line %d: the id is %d bytes, at most 32", i+1, len(id))
		}
		if _, dup := keys[id]; dup {
			return nil, fmt.Errorf("line %d: key id %q appears twice", i+1, id)
		}
		key, err := decodeHexKey(fields[1])
		if err != nil {
			return nil, fmt.Errorf("line %d: key %q: %w", i+1, id, err)
		}
		keys[id] = key
		if current == "" {
			current = id
		}
	}
	if current == "" {
		return nil, errors.New(`no key in it: want lines "id hexkey", the current key first`)
	}
	return NewKeyring(current, keys)
}

// createKeyFile makes a key file at path with one fresh key, unless a
// file is there already (then its error wraps fs.ErrExist). It writes
// and syncs a temporary file (created with O_EXCL, mode 0600) in the same
// folder and hard-links it to path, which fails rather than replaces: a
// reader never sees a half-written file, and of racing creators exactly
// one wins. Where the file system has no hard links it creates path
// itself with O_EXCL and writes it, and readers wait (keyFileSettle) for
// the content.
func createKeyFile(path string) (*Keyring, error) {
	key := make([]byte, KeySize)
	rand.Read(key)
	defer clear(key)
	tag := make([]byte, 4)
	rand.Read(tag)
	id := "k" + time.Now().UTC().Format("20060102") + "-" + hex.EncodeToString(tag)
	content := []byte("# mfakit keys: one \"id hexkey\" per line, the current key first. Keep this file secret (mode 0600).\n" +
		id + " " + hex.EncodeToString(key) + "\n")
	defer clear(content)
	k, err := NewKeyring(id, map[string][]byte{id: key})
	if err != nil {
		return nil, err
	}

	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*") // O_EXCL, mode 0600
	if err != nil {
		return nil, fmt.Errorf("mfa: creating key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := writeSynced(tmp, content); err != nil {
		return nil, fmt.Errorf("mfa: creating key file: %w", err)
	}
	err = linkFile(tmp.Name(), path)
	if err != nil && !errors.Is(err, fs.ErrExist) {
		// No hard links here: create path itself, exclusively.
		var f *os.File
		if f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
			if err = writeSynced(f, content); err != nil {
				os.Remove(path)
			}
		}
	}
	if errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("mfa: creating key file: %w", err)
	}
	syncDir(dir)
	return k, nil
}

// linkFile is os.Link; tests replace it to take the path of file systems
// without hard links.
var linkFile = os.Link

// writeSynced writes data to f, syncs and closes it.
func writeSynced(f *os.File, data []byte) error {
	_, err := f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncDir makes a new name in dir durable, where the platform allows.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
