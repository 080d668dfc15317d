package marker

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// PIDFilename is the file a gateway names itself in, in its HERMES_HOME,
// as it starts: upstream's first proof of a live gateway, before its
// runtime record (a gateway between its start and its first record has
// only this).
const PIDFilename = "gateway.pid"

// PIDRecord is gateway.pid: the gateway's PID and field 22 of its /proc
// stat ("" when the file gives none).
type PIDRecord struct {
	PID       int64
	StartTime string
}

// ParsePIDRecord parses gateway.pid: a JSON object with pid and start_time
// (upstream's), or a bare PID (older gateways').
func ParsePIDRecord(raw []byte) (PIDRecord, error) {
	text := strings.TrimSpace(string(raw))
	if pid, err := strconv.ParseInt(text, 10, 64); err == nil && pid > 0 {
		return PIDRecord{PID: pid}, nil
	}
	var r struct {
		PID       int64 `json:"pid"`
		StartTime any   `json:"start_time"`
	}
	if err := json.Unmarshal([]byte(text), &r); err != nil || r.PID <= 0 {
		return PIDRecord{}, fmt.Errorf("%s names no process", PIDFilename)
	}
	return PIDRecord{PID: r.PID, StartTime: startTime(r.StartTime)}, nil
}

// startTime is a start_time as written (clock ticks, a number or a
// string), "" when it is not a count.
func startTime(v any) string {
	var s string
	switch v := v.(type) {
	case float64:
		s = strconv.FormatFloat(v, 'f', -1, 64)
	case string:
		s = v
	}
	if _, err := strconv.ParseUint(s, 10, 64); err != nil {
		return ""
	}
	return s
}
