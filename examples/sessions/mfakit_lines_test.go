package main

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// maxMFAKitLines is the budget of Go code that exists only because of
// mfakit: mfa.go without its package clause and imports.
const maxMFAKitLines = 40

// codeLines returns the non-blank, non-comment lines of a Go file, and how
// many of them are the package clause and the import block.
func codeLines(t *testing.T, path string) (lines []string, header int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	inImports, inComment := false, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case inComment:
			inComment = !strings.Contains(line, "*/")
			continue
		case strings.HasPrefix(line, "/*"):
			inComment = !strings.Contains(line, "*/")
			continue
		case line == "" || strings.HasPrefix(line, "//"):
			continue
		}
		lines = append(lines, line)
		switch {
		case strings.HasPrefix(line, "package "), strings.HasPrefix(line, "import "):
			header++
			inImports = line == "import ("
		case inImports:
			header++
			inImports = line != ")"
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines, header
}

// TestMFAKitLines counts the Go lines that exist only because of mfakit:
// mfa.go, and the lines other files mark "// mfakit" (the calls into it).
// None of them may reach into the kit's Store or copy headers between
// authentication schemes: the kit does that work.
func TestMFAKitLines(t *testing.T) {
	lines, header := codeLines(t, "mfa.go")
	code := len(lines) - header
	if code > maxMFAKitLines {
		t.Errorf("mfa.go has %d lines of code, more than the budget of %d", code, maxMFAKitLines)
	}
	forbidden := regexp.MustCompile(`\.Header\b|Authorization|store\.(Put|Get|Delete|Consume|Reserve|Begin|Confirm|Accept|Enrollment|Replace|Forget|Reset)`)
	for _, l := range lines {
		if forbidden.MatchString(l) {
			t.Errorf("mfa.go: %q reaches into headers or the Store", l)
		}
	}
	marked := 0
	files, _ := filepath.Glob("*.go")
	for _, name := range files {
		if name == "mfa.go" || strings.HasSuffix(name, "_test.go") {
			continue
		}
		other, _ := codeLines(t, name)
		for _, l := range other {
			if strings.Contains(l, "// mfakit") {
				marked++
			}
		}
	}
	t.Logf("mfakit-only Go lines: mfa.go %d lines of code (+ %d of package clause and imports), %d marked lines elsewhere",
		code, header, marked)
}
