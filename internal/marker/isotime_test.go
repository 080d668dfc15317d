package marker

import (
	"testing"
	"time"
)

// ParseTime reads what Python's datetime.fromisoformat (3.11+) reads, as
// upstream parses requested_at and updated_at: a naive time is UTC.
func TestParseTimeReadsWhatFromisoformatReads(t *testing.T) {
	utc := func(y int, m time.Month, d, h, min, s, ns int) time.Time {
		return time.Date(y, m, d, h, min, s, ns, time.UTC)
	}
	for in, want := range map[string]time.Time{
		"2026-11-23T08:00:00.123456+00:00": utc(2026, 11, 23, 8, 0, 0, 123456000),
		"2026-11-23T08:00:00Z":             utc(2026, 11, 23, 8, 0, 0, 0),
		"2026-11-23T08:00:00":              utc(2026, 11, 23, 8, 0, 0, 0),
		"2026-11-23":                       utc(2026, 11, 23, 0, 0, 0, 0),
		"20261123":                         utc(2026, 11, 23, 0, 0, 0, 0),
		"2026-11-23 08:00":                 utc(2026, 11, 23, 8, 0, 0, 0),
		"2026-11-23T08":                    utc(2026, 11, 23, 8, 0, 0, 0),
		"20261123T080000":                  utc(2026, 11, 23, 8, 0, 0, 0),
		"2026-11-23T08:00:00,5":            utc(2026, 11, 23, 8, 0, 0, 500000000),
		"2026-11-23T08:00:00.1234567891":   utc(2026, 11, 23, 8, 0, 0, 123456000),
		"2026-11-23T09:00:00+01:00":        utc(2026, 11, 23, 8, 0, 0, 0),
		"2026-11-23T09:00:00+0100":         utc(2026, 11, 23, 8, 0, 0, 0),
		"2026-11-23T06:30:00-01:30":        utc(2026, 11, 23, 8, 0, 0, 0),
		"2026-11-23T09:00:00+01":           utc(2026, 11, 23, 8, 0, 0, 0),
		"2026-11-23T09:00:30+01:00:30":     utc(2026, 11, 23, 8, 0, 0, 0),
	} {
		got, err := ParseTime(in)
		if err != nil || !got.Equal(want) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{
		"", "yesterday", "2026-11", "2026", "2026-13-01", "2026-02-30", "2026-11-23T25:00", "2026-11-23T08:60",
		"2026-11-23T", "2026-11-23T08:00:00+24:00", "2026-1123", "2026-W47-1", "2026-327", " 2026-11-23",
	} {
		if got, err := ParseTime(in); err == nil {
			t.Errorf("ParseTime(%q) = %v, want an error", in, got)
		}
	}
}
