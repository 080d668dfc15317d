package marker

import (
	"fmt"
	"regexp"
	"strconv"
	"time"
)

// isoTime is what Python's datetime.fromisoformat (3.11 and later, as in
// upstream's image) accepts, less week dates: a date, extended or basic;
// then, after any one character, a time of hours, minutes and seconds
// (each later part optional, extended or basic), with a fraction after '.'
// or ','; then an offset (Z, or ± hours with optional minutes and
// seconds).
var isoTime = regexp.MustCompile(`^(\d{4})(?:-(\d{2})-(\d{2})|(\d{2})(\d{2}))` +
	`(?:.(\d{2})(?::?(\d{2})(?::?(\d{2})(?:[.,](\d+))?)?)?` +
	`(Z|[+-]\d{2}(?::?\d{2}(?::?\d{2}(?:\.\d{1,6})?)?)?)?)?$`)

// isoOffset splits an offset into its sign and parts.
var isoOffset = regexp.MustCompile(`^([+-])(\d{2}):?(\d{2})?:?(\d{2})?`)

// ParseTime parses a time as upstream does (gateway/drain_control.py and
// gateway/status.py parse with datetime.fromisoformat): anything that
// function accepts but week dates, and a time without an offset is UTC.
func ParseTime(s string) (time.Time, error) {
	m := isoTime.FindStringSubmatch(s)
	if m == nil {
		return time.Time{}, fmt.Errorf("not an ISO 8601 time: %q", Excerpt(s, 64))
	}
	month, day := m[2], m[3]
	if month == "" {
		month, day = m[4], m[5]
	}
	n := func(s string) int { v, _ := strconv.Atoi(s); return v }
	year, mon, d, hour, minute, sec := n(m[1]), n(month), n(day), n(m[6]), n(m[7]), n(m[8])
	nanos := 0
	if frac := m[9]; frac != "" {
		frac += "000000"
		nanos = n(frac[:6]) * 1000 // Python keeps microseconds and drops the rest
	}
	loc := time.UTC
	if tz := m[10]; tz != "" && tz != "Z" {
		o := isoOffset.FindStringSubmatch(tz)
		offset := n(o[2])*3600 + n(o[3])*60 + n(o[4])
		if offset >= 24*3600 {
			return time.Time{}, fmt.Errorf("offset out of range: %q", Excerpt(s, 64))
		}
		if o[1] == "-" {
			offset = -offset
		}
		loc = time.FixedZone("", offset)
	}
	t := time.Date(year, time.Month(mon), d, hour, minute, sec, nanos, loc)
	if year < 1 || mon < 1 || mon > 12 || t.Day() != d || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, fmt.Errorf("not a valid date and time: %q", Excerpt(s, 64))
	}
	return t, nil
}
