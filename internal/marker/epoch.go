package marker

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Epoch is upstream's identity of a container instantiation:
// boot_id + ":" + the start time of PID 1 (field 22 of /proc/1/stat), or ""
// when neither can be read.
func Epoch(bootID, pid1Stat string) string {
	bootID = strings.TrimSpace(bootID)
	start, err := ProcStatStartTime(pid1Stat)
	if err != nil {
		start = ""
	}
	if bootID == "" && start == "" {
		return ""
	}
	return bootID + ":" + start
}

// epochForm is what Epoch returns: a boot id (the kernel's is a UUID; tests
// use short names) and a start time in clock ticks (a 64-bit number, at
// most 20 digits), either of them possibly missing. At most 85 bytes.
var epochForm = regexp.MustCompile(`^[0-9A-Za-z-]{0,64}:[0-9]{0,20}$`)

// CheckEpoch is an epoch a container reported, when it has the form Epoch
// gives, else "" (unknown, as when nothing could be read). A gateway's
// container may be hostile: what it reports is stored only in that form.
func CheckEpoch(reported string) string {
	if !epochForm.MatchString(reported) {
		return ""
	}
	return reported
}

// ProcEpoch is the epoch of the container whose /proc is at procRoot, as
// the gateway computes it: "/proc" for this process's own container.
func ProcEpoch(procRoot string) string {
	boot, _ := os.ReadFile(procRoot + "/sys/kernel/random/boot_id")
	stat, _ := os.ReadFile(procRoot + "/1/stat")
	line, _, _ := strings.Cut(string(stat), "\n")
	return Epoch(string(boot), line)
}

// ProcStatStartTime returns field 22 (starttime) of a /proc/<pid>/stat line.
// The command name (field 2) is in parentheses and may itself contain spaces
// and parentheses, so, as upstream does, the text is split on its LAST ')'
// and the starttime is index 19 of the whitespace-separated rest.
func ProcStatStartTime(stat string) (string, error) {
	rest, err := procStatFields(stat)
	if err != nil {
		return "", err
	}
	if len(rest) < 20 {
		return "", fmt.Errorf("/proc stat has %d fields after the command name, want at least 20", len(rest))
	}
	return rest[19], nil
}

// ProcStatExited reports whether a /proc/<pid>/stat line is a process that
// has exited and waits to be reaped (state Z or X, field 3): it runs no
// more, though its PID and start time stand.
func ProcStatExited(stat string) bool {
	rest, err := procStatFields(stat)
	return err == nil && len(rest) > 0 && (rest[0] == "Z" || rest[0] == "X")
}

// procStatFields are the fields of a /proc/<pid>/stat line after the
// command name, found after the LAST ')'.
func procStatFields(stat string) ([]string, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return nil, fmt.Errorf("no ')' in /proc stat %q", Shorten(stat, 64))
	}
	return strings.Fields(stat[i+1:]), nil
}

// Elide returns s cut to about n bytes by dropping its middle, marked with
// " … ": an error keeps both what was being done and, at its end, why it
// failed. It never cuts a character in two.
func Elide(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:runeStart(s, n/3)] + " … " + s[runeStart(s, len(s)-n*2/3):]
}

// Shorten returns s cut to its first n bytes at most, marked with "..." when
// cut: what a message quotes of untrusted text stays short. It never cuts a
// character in two.
func Shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:runeStart(s, n)] + "..."
}

// runeStart is i, or, when byte i of s is inside a character, where that
// character starts.
func runeStart(s string, i int) int {
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return i
}

// Printable returns s safe to show on a terminal or in one line of a table:
// what a gateway writes may be hostile, and a terminal acts on escape
// sequences (clearing the screen, setting the clipboard with OSC 52). Line
// breaks and tabs become spaces; every other control character (C0, DEL,
// C1), every bidirectional control (which reorders the text around it) and
// every byte that is not UTF-8 becomes U+FFFD.
func Printable(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case unicode.IsSpace(r):
			return ' '
		case unicode.IsControl(r), unicode.Is(unicode.Bidi_Control, r):
			return utf8.RuneError
		}
		return r
	}, s)
}

// Excerpt is what a message or a table shows of untrusted text: its first
// n bytes at most (Shorten), printable (Printable). Each character it
// replaces takes up to 3 bytes, and one column on a terminal.
func Excerpt(s string, n int) string { return Printable(Shorten(s, n)) }
