// Package options checks the operator's option values at start, with an
// error that names the flag, so a bad value stops the manager with a clear
// message instead of a hot loop or a hang.
package options

import (
	"fmt"
	"strings"
	"time"
)

// PositiveDuration refuses a zero or negative duration.
func PositiveDuration(flag string, d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("%s %s must be positive", flag, d)
	}
	return nil
}

// AtLeastOne refuses a count below one.
func AtLeastOne(flag string, n int) error {
	if n < 1 {
		return fmt.Errorf("%s %d must be at least 1", flag, n)
	}
	return nil
}

// NotNegativeDuration refuses a negative duration.
func NotNegativeDuration(flag string, d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("%s %s must not be negative", flag, d)
	}
	return nil
}

// AtLeastDuration refuses a duration below least.
func AtLeastDuration(flag string, d, least time.Duration) error {
	if d < least {
		return fmt.Errorf("%s %s must be at least %s", flag, d, least)
	}
	return nil
}

// ServiceAccount refuses a ServiceAccount that is not namespace/name ("" is
// allowed: none).
func ServiceAccount(flag, account string) error {
	ns, name, ok := strings.Cut(account, "/")
	if account != "" && (!ok || ns == "" || name == "" || strings.Contains(name, "/")) {
		return fmt.Errorf("%s %q must be namespace/name", flag, account)
	}
	return nil
}
