package marker

import (
	"strings"
	"testing"
)

func TestElideKeepsBothEnds(t *testing.T) {
	if got := Elide("short", 10); got != "short" {
		t.Errorf("a short text changed: %q", got)
	}
	long := "exec in ns/pod:gateway: " + strings.Repeat("x", 500) + `: exec: "sh": executable file not found in $PATH`
	got := Elide(long, 120)
	if !strings.HasPrefix(got, "exec in ns/pod:gateway") || !strings.HasSuffix(got, "not found in $PATH") || len(got) > 120+len(" … ") {
		t.Errorf("elided to %q (%d bytes): want both ends, at most about 120 bytes", got, len(got))
	}
}

// An epoch a container reports is kept only in the form Epoch gives it: a
// gateway's container may be hostile, and what it reports is stored.
func TestCheckEpoch(t *testing.T) {
	for _, epoch := range []string{"6f1d2c3b-4a59-4e6f-8a7b-9c0d1e2f3a4b:1234567890", "boot:1", "abc-123:", ":42", ""} {
		if got := CheckEpoch(epoch); got != epoch {
			t.Errorf("CheckEpoch(%q) = %q, want it kept", epoch, got)
		}
	}
	for _, epoch := range []string{
		strings.Repeat("b", 65) + ":1", "boot:" + strings.Repeat("1", 21), "boot", "boot:1:2", "boot:1\n", "boot:\x1b[2J", `boot":1`, "böot:1",
	} {
		if got := CheckEpoch(epoch); got != "" {
			t.Errorf("CheckEpoch(%q) = %q, want \"\"", epoch, got)
		}
	}
}

// Untrusted text is shown with nothing a terminal acts on, in one line, and
// never with a character cut in two.
func TestExcerpt(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"draining", 32, "draining"},
		{"a\tb\r\nc", 32, "a b  c"},
		{"\x1b]52;c;aGk=\x07\x1b[2J", 32, "\ufffd]52;c;aGk=\ufffd\ufffd[2J"},
		{"\u202eabc\u2066", 32, "\ufffdabc\ufffd"},
		{"\u009b31m\x9b\x7f", 32, "\ufffd31m\ufffd\ufffd"},
		{"ééé", 3, "é..."}, // not cut inside the second é
		{"\x1b[2J\x1b[H", 4, "\ufffd[2J..."},
	} {
		if got := Excerpt(tc.in, tc.n); got != tc.want {
			t.Errorf("Excerpt(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}
