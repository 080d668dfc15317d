package marker

import (
	"cmp"
	"errors"
	"os"
	"strings"
	"unicode"
)

// DefaultHome is upstream's HERMES_HOME in its image.
const DefaultHome = "/opt/data"

// OwnHome is the HERMES_HOME of the container this process runs in: its
// HERMES_HOME environment variable, else DefaultHome (as program.sh, run
// through exec, takes it from the container's environment).
func OwnHome() string { return cmp.Or(os.Getenv("HERMES_HOME"), DefaultHome) }

// MaxHomeLength bounds a HERMES_HOME path (the CRD enforces the same).
const MaxHomeLength = 512

// ValidateHome checks a HERMES_HOME path with the rules the CRD's CEL
// validation applies to spec.hermesHome. It serves values the API server did
// not validate: a pod's literal HERMES_HOME env value.
func ValidateHome(p string) error {
	switch {
	case len(p) < 2 || len(p) > MaxHomeLength:
		return errors.New("must be 2 to 512 characters")
	case !strings.HasPrefix(p, "/"):
		return errors.New("must be an absolute path")
	case strings.HasSuffix(p, "/"):
		return errors.New("must not end with '/'")
	case strings.Contains(p, "//"):
		return errors.New("must not contain '//'")
	case strings.IndexFunc(p, unicode.IsControl) >= 0:
		return errors.New("must not contain control characters")
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "." || seg == ".." {
			return errors.New("must not contain '.' or '..' segments")
		}
	}
	return nil
}
