package marker

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

const (
	// Filename is the drain marker's name inside HERMES_HOME.
	Filename = ".drain_request.json"
	// MaxAge is how old a marker's requested_at may be before newer gateways
	// ignore it. A drain that lasts longer must rewrite its marker before then.
	MaxAge = time.Hour
	// TimeLayout is how upstream writes requested_at: Python's isoformat()
	// of an aware UTC datetime (microseconds and a +00:00 offset).
	TimeLayout = "2006-01-02T15:04:05.000000-07:00"
)

// Request is what the operator asks one gateway instantiation for. Its
// time is not in it: requested_at is stamped inside the gateway's container,
// on the gateway's clock, which is the clock upstream measures its expiry
// on (Rendered.Text).
type Request struct {
	Principal            string
	SuppressNotification bool
	Origin               Origin
}

// Origin identifies which GatewayDrain wrote a marker and for which
// instantiation. The gateway ignores it (extra fields are allowed); the
// operator uses it to recognise its own markers and never touch others'.
type Origin struct {
	GatewayDrainUID    string `json:"gatewayDrainUID"`
	GatewayDrain       string `json:"gatewayDrain"`
	Pod                string `json:"pod"`
	PodUID             string `json:"podUID"`
	Container          string `json:"container"`
	ContainerStartedAt string `json:"containerStartedAt,omitempty"`
	RestartCount       int32  `json:"restartCount"`
	ContainerID        string `json:"containerID,omitempty"`
}

// body is the marker's JSON, field for field in upstream's order.
type body struct {
	Action               string  `json:"action"`
	RequestedAt          string  `json:"requested_at"`
	Principal            string  `json:"principal"`
	Epoch                string  `json:"epoch"`
	SuppressNotification bool    `json:"suppress_notification"`
	Kubernetes           *Origin `json:"kubernetes"`
}

// Holes stand where the container's clock and epoch go until the container
// fills them in. They cannot occur inside a JSON string value, whose quotes
// are escaped.
const (
	timeHole  = `"requested_at":"\u0000"`
	epochHole = `"epoch":"\u0001"`
)

// Rendered is a marker with two values left for the target container to
// fill in: its clock (requested_at) and its epoch, known only there. The
// container writes Head + its time + Mid + its epoch + Tail.
type Rendered struct {
	Head, Mid, Tail string
}

// Text is the marker the container writes at its time now with its epoch.
func (r Rendered) Text(now time.Time, epoch string) string {
	return r.Head + now.UTC().Format(TimeLayout) + r.Mid + epoch + r.Tail
}

// Render returns the marker for r with its time and epoch left for the
// container (the in-container program refuses an epoch that would need
// JSON escaping; a boot id and a number never do, and neither does a time).
func Render(r Request) (Rendered, error) {
	text, err := encode(body{
		Action:               "drain",
		RequestedAt:          "\x00",
		Principal:            r.Principal,
		Epoch:                "\x01",
		SuppressNotification: r.SuppressNotification,
		Kubernetes:           &r.Origin,
	})
	if err != nil {
		return Rendered{}, fmt.Errorf("rendering marker: %w", err)
	}
	head, rest, ok := strings.Cut(text, timeHole)
	mid, tail, ok2 := strings.Cut(rest, epochHole)
	if !ok || !ok2 {
		return Rendered{}, fmt.Errorf("rendering marker: no requested_at and epoch fields in %q", text)
	}
	return Rendered{Head: head + `"requested_at":"`, Mid: `"` + mid + `"epoch":"`, Tail: `"` + tail}, nil
}

// encode is compact JSON without HTML escaping, so values stay byte-exact
// and the owner token is the very text the marker holds.
func encode(v any) (string, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	return strings.TrimSuffix(buf.String(), "\n"), nil
}

// OwnerToken is the exact text every marker rendered for the GatewayDrain
// with this UID contains. The in-container program removes or overwrites a
// marker only when it contains this token, so a marker someone else wrote is
// never touched.
func OwnerToken(gatewayDrainUID string) string {
	v, _ := encode(gatewayDrainUID) // a string always encodes
	return `"kubernetes":{"gatewayDrainUID":` + v
}

// Found is a marker file as read from a HERMES_HOME.
type Found struct {
	// fields is the JSON object, or nil when the file is not one (corrupt).
	fields map[string]any
	// undecodable is a file that is not UTF-8.
	undecodable bool
	// origin is the kubernetes object of a marker an operator wrote.
	origin *Origin
}

// Parse reads a marker file's content the way the gateway does: never failing.
// Content that is not a JSON object is "present but contentless", which the
// gateway still honours (fail-safe toward quiescing). Content that is not
// UTF-8 is undecodable: upstream's read raises, its watcher swallows the
// error, and the gateway's state does not change.
func Parse(raw []byte) Found {
	var f Found
	if !utf8.Valid(raw) {
		return Found{undecodable: true}
	}
	if json.Unmarshal(raw, &f.fields) != nil {
		f.fields = nil
		return f
	}
	var withOrigin struct {
		Kubernetes *Origin `json:"kubernetes"`
	}
	if json.Unmarshal(raw, &withOrigin) == nil && withOrigin.Kubernetes != nil && withOrigin.Kubernetes.GatewayDrainUID != "" {
		f.origin = withOrigin.Kubernetes
	}
	return f
}

// Corrupt reports whether the file was UTF-8 but not a JSON object.
func (f Found) Corrupt() bool { return f.fields == nil && !f.undecodable }

// Undecodable reports whether the file was not UTF-8: the gateway keeps the
// state it had, draining or not.
func (f Found) Undecodable() bool { return f.undecodable }

// Origin returns the writer identity of a marker an operator wrote.
func (f Found) Origin() (Origin, bool) {
	if f.origin == nil {
		return Origin{}, false
	}
	return *f.origin, true
}

// Principal is the marker's principal, "" when absent or not a string.
func (f Found) Principal() string {
	s, _ := f.fields["principal"].(string)
	return s
}

// EpochValue is the marker's epoch, "" when absent or not a string.
func (f Found) EpochValue() string {
	s, _ := f.fields["epoch"].(string)
	return s
}

// Honoured reports whether a gateway whose own epoch is currentEpoch treats
// this (present) marker as a drain request, at time now. Upstream rules:
//   - a corrupt marker is honoured (fail-safe);
//   - a marker whose epoch is present and differs from a known current epoch
//     is stale and ignored; a missing or empty epoch is honoured (lenient);
//   - a requested_at (parsed as Python's datetime.fromisoformat does, on the
//     gateway's clock) older than MaxAge is ignored; a missing, unparseable
//     or future one is honoured;
//   - an undecodable (not UTF-8) marker starts no drain and ends none.
func (f Found) Honoured(currentEpoch string, now time.Time) bool {
	switch {
	case f.undecodable:
		return false // it starts no drain (nor ends one: Undecodable)
	case f.Corrupt():
		return true
	}
	if f.EpochMismatch(currentEpoch) {
		return false
	}
	if t, ok := f.RequestedAt(); ok && now.Sub(t) > MaxAge {
		return false
	}
	return true
}

// EpochMismatch reports whether the marker is definitely another
// instantiation's: it carries an epoch, the current one is known, and they
// differ. Every gateway version ignores such a marker.
func (f Found) EpochMismatch(currentEpoch string) bool {
	e := f.fields["epoch"]
	return !f.Corrupt() && currentEpoch != "" && truthy(e) && e != currentEpoch
}

// RequestedAt is the marker's requested_at; ok is false when it is missing
// or unparseable.
func (f Found) RequestedAt() (t time.Time, ok bool) {
	s, _ := f.fields["requested_at"].(string)
	t, err := ParseTime(s)
	return t, err == nil
}

// truthy is Python's truth value of a decoded JSON value.
func truthy(v any) bool {
	switch v := v.(type) {
	case nil:
		return false
	case bool:
		return v
	case float64:
		return v != 0
	case string:
		return v != ""
	case []any:
		return len(v) > 0
	case map[string]any:
		return len(v) > 0
	}
	return true
}
