package retry

import (
	"testing"
	"time"
)

func TestDelayDoublesUpToMax(t *testing.T) {
	for _, tc := range []struct {
		failures int32
		want     time.Duration
	}{
		{0, 0}, {1, time.Second}, {2, 2 * time.Second}, {3, 4 * time.Second}, {7, 64 * time.Second},
		{8, 2 * time.Minute}, {40, 2 * time.Minute}, {1 << 30, 2 * time.Minute},
	} {
		if got := Delay(time.Second, 2*time.Minute, tc.failures); got != tc.want {
			t.Errorf("after %d failures: %s, want %s", tc.failures, got, tc.want)
		}
	}
	if got := Delay(time.Hour, 1<<62, 40); got != 1<<62 {
		t.Errorf("an overflowing shift gave %s", got)
	}
}
