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
