package marker

import (
	"fmt"
	"os"
	"strings"
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
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return "", fmt.Errorf("no ')' in /proc stat %q", Shorten(stat, 64))
	}
	rest := strings.Fields(stat[i+1:])
	if len(rest) < 20 {
		return "", fmt.Errorf("/proc stat has %d fields after the command name, want at least 20", len(rest))
	}
	return rest[19], nil
}

// Elide returns s cut to about n bytes by dropping its middle, marked with
// " … ": an error keeps both what was being done and, at its end, why it
// failed.
func Elide(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n/3] + " … " + s[len(s)-n*2/3:]
}

// Shorten returns s cut to its first n bytes, marked with "..." when cut:
// what a message quotes of untrusted text stays short.
func Shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
