// Package retry is the one backoff both reconcilers use after failed calls
// into a gateway container.
package retry

import "time"

// Delay is the wait after the given number of consecutive failures (at
// least 1): base doubled for each failure after the first, at most max.
func Delay(base, max time.Duration, failures int32) time.Duration {
	if failures < 1 {
		return 0
	}
	shift := min(failures-1, 30)
	if d := base << shift; d > 0 && d < max && d>>shift == base {
		return d
	}
	return max
}
