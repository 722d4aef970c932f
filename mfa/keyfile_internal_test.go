package mfa

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

func randomKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, KeySize)
	rand.Read(k)
	return k
}

// sameKeyring checks that a and b hold the same keys, the same one
// current: what one seals the other opens, and both hash codes alike.
func sameKeyring(t *testing.T, a, b *Keyring) {
	t.Helper()
	if a.CurrentID() != b.CurrentID() || len(a.codeKeys) != len(b.codeKeys) || len(a.aeads) != len(b.aeads) {
		t.Fatalf("keyrings differ: current %q and %q, %d and %d keys", a.CurrentID(), b.CurrentID(), len(a.aeads), len(b.aeads))
	}
	for i := range a.codeKeys {
		if !bytes.Equal(a.codeKeys[i], b.codeKeys[i]) {
			t.Fatalf("code hash key %d differs", i)
		}
	}
	ad := []byte("ad")
	sealed, id := a.seal([]byte("secret"), ad)
	if got, err := b.open(id, sealed, ad); err != nil || string(got) != "secret" {
		t.Fatalf("b cannot open what a sealed: %q, %v", got, err)
	}
}

// wantErr checks that err is an error mentioning each of want and
// quoting no 8 characters in a row of secret.
func wantErr(t *testing.T, err error, secret string, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one mentioning %q", want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Fatalf("error %q does not mention %q", err, w)
		}
	}
	for i := 0; i+8 <= len(secret); i++ {
		if strings.Contains(err.Error(), secret[i:i+8]) {
			t.Fatalf("error %q quotes the key", err)
		}
	}
}

func TestLoadKeyringHex(t *testing.T) {
	k1, k2 := randomKey(t), randomKey(t)
	want, err := NewKeyring("k2", map[string][]byte{"k1": k1, "k2": k2})
	if err != nil {
		t.Fatal(err)
	}
	// Upper case and surrounding white space (a trailing newline from a
	// secret file, say) are fine.
	got, err := LoadKeyringHex("k2", map[string]string{"k1": hex.EncodeToString(k1),
		"k2": " " + strings.ToUpper(hex.EncodeToString(k2)) + "\n"})
	if err != nil {
		t.Fatal(err)
	}
	sameKeyring(t, got, want)

	bad := hex.EncodeToString(k1)[:40] + "zz" + hex.EncodeToString(k1)[42:]
	_, err = LoadKeyringHex("k2", map[string]string{"k1": bad, "k2": hex.EncodeToString(k2)})
	wantErr(t, err, bad, `"k1"`, "not valid hex")
	short := hex.EncodeToString(k1[:31])
	_, err = LoadKeyringHex("k2", map[string]string{"k1": short, "k2": hex.EncodeToString(k2)})
	wantErr(t, err, short, `"k1"`, "31 bytes, want 32")
	long := hex.EncodeToString(append(k1, 0))
	_, err = LoadKeyringHex("k1", map[string]string{"k1": long})
	wantErr(t, err, long, `"k1"`, "33 bytes")
	_, err = LoadKeyringHex("k3", map[string]string{"k1": hex.EncodeToString(k1)})
	wantErr(t, err, hex.EncodeToString(k1), `"k3"`)
	_, err = LoadKeyringHex(strings.Repeat("i", 33), map[string]string{strings.Repeat("i", 33): hex.EncodeToString(k1)})
	wantErr(t, err, hex.EncodeToString(k1), "1 to 32 bytes")
}

func TestKeyringFromEnv(t *testing.T) {
	const p = "MFAKIT_TEST_KEYRING_"
	k1, k2 := randomKey(t), randomKey(t)
	want, err := NewKeyring("K2", map[string][]byte{"K1": k1, "K2": k2})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("RoundTrip", func(t *testing.T) {
		t.Setenv(p+"CURRENT", "K2")
		t.Setenv(p+"K1", hex.EncodeToString(k1))
		t.Setenv(p+"K2", hex.EncodeToString(k2))
		got, err := KeyringFromEnv(p)
		if err != nil {
			t.Fatal(err)
		}
		sameKeyring(t, got, want)
	})
	t.Run("DefaultPrefix", func(t *testing.T) {
		t.Setenv("MFAKIT_KEY_CURRENT", "K2")
		t.Setenv("MFAKIT_KEY_K1", hex.EncodeToString(k1))
		t.Setenv("MFAKIT_KEY_K2", hex.EncodeToString(k2))
		got, err := KeyringFromEnv("")
		if err != nil {
			t.Fatal(err)
		}
		sameKeyring(t, got, want)
	})
	t.Run("BadHex", func(t *testing.T) {
		bad := "g" + hex.EncodeToString(k1)[1:]
		t.Setenv(p+"CURRENT", "K2")
		t.Setenv(p+"K1", bad)
		t.Setenv(p+"K2", hex.EncodeToString(k2))
		_, err := KeyringFromEnv(p)
		wantErr(t, err, bad, p+"K1", "not valid hex")
	})
	t.Run("WrongLength", func(t *testing.T) {
		short := hex.EncodeToString(k2[:16])
		t.Setenv(p+"CURRENT", "K2")
		t.Setenv(p+"K2", short)
		_, err := KeyringFromEnv(p)
		wantErr(t, err, short, p+"K2", "16 bytes, want 32")
	})
	t.Run("NoCurrent", func(t *testing.T) {
		t.Setenv(p+"CURRENT", "")
		t.Setenv(p+"K2", hex.EncodeToString(k2))
		_, err := KeyringFromEnv(p)
		wantErr(t, err, hex.EncodeToString(k2), p+"CURRENT", "not set")
	})
	t.Run("CurrentMissing", func(t *testing.T) {
		t.Setenv(p+"CURRENT", "K9")
		t.Setenv(p+"K2", hex.EncodeToString(k2))
		_, err := KeyringFromEnv(p)
		wantErr(t, err, hex.EncodeToString(k2), `"K9"`, p+"K9 is not set")
	})
}

// writeKeyFile writes content to a fresh key file of mode perm and
// returns its path.
func writeKeyFile(t *testing.T, content string, perm os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mfa.key")
	if err := os.WriteFile(path, []byte(content), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, perm); err != nil { // past the umask
		t.Fatal(err)
	}
	return path
}

func TestLoadOrCreateKeyFileCreates(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mfa.key")
	created, err := LoadOrCreateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Fatalf("new key file has mode %04o, want 0600", fi.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var keyLines []string
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if !strings.HasPrefix(l, "#") {
			keyLines = append(keyLines, l)
		}
	}
	if len(keyLines) != 1 || len(strings.Fields(keyLines[0])) != 2 || strings.Fields(keyLines[0])[0] != created.CurrentID() {
		t.Fatalf("new key file:\n%s", data)
	}
	if k, err := hex.DecodeString(strings.Fields(keyLines[0])[1]); err != nil || len(k) != KeySize {
		t.Fatalf("new key file holds no %d-byte hex key: %v", KeySize, err)
	}
	loaded, err := LoadOrCreateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sameKeyring(t, loaded, created)
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("the folder holds %d entries, want the key file alone", len(entries))
	}
}

func TestLoadOrCreateKeyFileReads(t *testing.T) {
	k1, k2 := randomKey(t), randomKey(t)
	want, err := NewKeyring("2026b", map[string][]byte{"2026a": k1, "2026b": k2})
	if err != nil {
		t.Fatal(err)
	}
	content := "# rotated 2026-03-01\r\n\n2026b\t" + hex.EncodeToString(k2) + "\r\n  # the old key\n2026a " + hex.EncodeToString(k1)
	got, err := LoadOrCreateKeyFile(writeKeyFile(t, content, 0o600))
	if err != nil {
		t.Fatal(err)
	}
	sameKeyring(t, got, want)
	if _, err := LoadOrCreateKeyFile(writeKeyFile(t, "k "+hex.EncodeToString(k1), 0o400)); err != nil {
		t.Fatalf("a read-only key file: %v", err)
	}
}

func TestLoadOrCreateKeyFileRefusesBadFiles(t *testing.T) {
	old := keyFileSettle
	keyFileSettle = 50 * time.Millisecond
	t.Cleanup(func() { keyFileSettle = old })
	good := hex.EncodeToString(randomKey(t))
	bad := good[:10] + "x" + good[11:]
	for _, c := range []struct {
		name, content string
		want          []string
	}{
		{"BadHex", "k2 " + good + "\nk1 " + bad + "\n", []string{"line 2", `"k1"`, "not valid hex"}},
		{"Short", "k1 " + good[:62] + "\n", []string{"line 1", `"k1"`, "31 bytes, want 32"}},
		{"BareKey", good + "\n", []string{"line 1", "one field", "write an id before it"}},
		{"ThreeFields", "k1 " + good + " extra\n", []string{"line 1", "3 fields"}},
		{"DuplicateID", "k1 " + good + "\nk1 " + good + "\n", []string{"line 2", `"k1" appears twice`}},
		{"KeyFirst", good + " k1\n", []string{"line 1", "the id is 64 bytes"}},
		{"NoKey", "# nothing\n\n", []string{"no key"}},
		{"Empty", "", []string{"no key"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := writeKeyFile(t, c.content, 0o600)
			_, err := LoadOrCreateKeyFile(path)
			wantErr(t, err, good, append(c.want, path)...)
			if data, _ := os.ReadFile(path); string(data) != c.content {
				t.Fatal("a bad key file was rewritten")
			}
		})
	}
	t.Run("TooLarge", func(t *testing.T) {
		_, err := LoadOrCreateKeyFile(writeKeyFile(t, strings.Repeat("#\n", maxKeyFile), 0o600))
		wantErr(t, err, "", "larger than")
	})
	t.Run("Directory", func(t *testing.T) {
		_, err := LoadOrCreateKeyFile(t.TempDir())
		wantErr(t, err, "", "not a regular file")
	})
	t.Run("NoFolder", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "missing", "mfa.key")
		_, err := LoadOrCreateKeyFile(path)
		wantErr(t, err, "", "creating key file")
		if _, err := os.Stat(filepath.Dir(path)); !os.IsNotExist(err) {
			t.Fatal("the missing folder was created")
		}
	})
}

func TestLoadOrCreateKeyFilePermissions(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows has no group and other mode bits")
	}
	good := hex.EncodeToString(randomKey(t))
	for _, perm := range []os.FileMode{0o644, 0o640, 0o604, 0o660, 0o602, 0o610} {
		path := writeKeyFile(t, "k1 "+good+"\n", perm)
		_, err := LoadOrCreateKeyFile(path)
		wantErr(t, err, good, path, "chmod 600 "+path)
	}
}

// Processes that start together with no key file end up with one key.
func TestLoadOrCreateKeyFileConcurrent(t *testing.T) {
	concurrentCreation(t)
}

// So they do where the file system has no hard links.
func TestLoadOrCreateKeyFileConcurrentNoLinks(t *testing.T) {
	linkFile = func(string, string) error { return errors.New("hard links not supported") }
	t.Cleanup(func() { linkFile = os.Link })
	concurrentCreation(t)
}

func concurrentCreation(t *testing.T) {
	for range 20 {
		dir := t.TempDir()
		path := filepath.Join(dir, "mfa.key")
		const n = 16
		rings := make([]*Keyring, n)
		errs := make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				<-start
				rings[i], errs[i] = LoadOrCreateKeyFile(path)
			})
		}
		close(start)
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("caller %d: %v", i, errs[i])
			}
			sameKeyring(t, rings[i], rings[0])
		}
		onDisk, err := LoadOrCreateKeyFile(path)
		if err != nil {
			t.Fatal(err)
		}
		sameKeyring(t, onDisk, rings[0])
		if entries, _ := os.ReadDir(dir); len(entries) != 1 {
			t.Fatalf("the folder holds %d entries, want the key file alone", len(entries))
		}
	}
}
