// Package options checks the operator's option values at start, with an
// error that names the flag, so a bad value stops the manager with a clear
// message instead of a hot loop or a hang.
package options

import (
	"fmt"
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
