package marker

import (
	"strings"
	"testing"
	"time"
)

const current = "boot-a:100"

var now = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func iso(t time.Time) string { return t.UTC().Format(TimeLayout) }

// TestHonouredMirrorsUpstream is upstream's drain_requested() for a present
// marker, row by row.
func TestHonouredMirrorsUpstream(t *testing.T) {
	fresh := iso(now.Add(-time.Minute))
	cases := []struct {
		name    string
		content string
		current string
		want    bool
	}{
		{"fresh, same epoch", `{"action":"drain","requested_at":"` + fresh + `","epoch":"boot-a:100"}`, current, true},
		{"stale epoch (earlier instantiation)", `{"action":"drain","requested_at":"` + fresh + `","epoch":"boot-a:99"}`, current, false},
		{"other boot", `{"action":"drain","epoch":"boot-b:100"}`, current, false},
		{"no epoch: lenient", `{"action":"drain","requested_at":"` + fresh + `"}`, current, true},
		{"empty epoch: lenient", `{"action":"drain","epoch":""}`, current, true},
		{"null epoch: lenient", `{"action":"drain","epoch":null}`, current, true},
		{"numeric epoch never equals", `{"action":"drain","epoch":5}`, current, false},
		{"unknown current epoch: presence only", `{"action":"drain","epoch":"boot-b:1"}`, "", true},
		{"corrupt: fail-safe", `{"action":"drain",`, current, true},
		{"empty file: fail-safe", ``, current, true},
		{"non-object JSON: contentless", `["drain"]`, current, true},
		{"JSON string: contentless", `"drain"`, current, true},
		{"not UTF-8: starts no drain (the gateway keeps its state)", "{\"epoch\":\"\xff\"}", current, false},
		{"not UTF-8, not even JSON", "\xff\xfe", current, false},
		{"expired requested_at", `{"action":"drain","requested_at":"` + iso(now.Add(-61*time.Minute)) + `","epoch":"boot-a:100"}`, current, false},
		{"59 minutes old", `{"action":"drain","requested_at":"` + iso(now.Add(-59*time.Minute)) + `","epoch":"boot-a:100"}`, current, true},
		{"unparseable requested_at: honoured", `{"action":"drain","requested_at":"yesterday","epoch":"boot-a:100"}`, current, true},
		{"naive requested_at taken as UTC", `{"action":"drain","requested_at":"2026-11-23T10:00:00","epoch":"boot-a:100"}`, current, false},
		{"Z suffix", `{"action":"drain","requested_at":"2026-11-23T11:59:00Z","epoch":"boot-a:100"}`, current, true},
		{"exactly an hour old: honoured (only older expires)", `{"action":"drain","requested_at":"` + iso(now.Add(-time.Hour)) + `","epoch":"boot-a:100"}`, current, true},
		{"an hour and a second old: expired", `{"action":"drain","requested_at":"` + iso(now.Add(-time.Hour-time.Second)) + `","epoch":"boot-a:100"}`, current, false},
		{"in the future (clock skew): honoured", `{"action":"drain","requested_at":"` + iso(now.Add(5*time.Hour)) + `","epoch":"boot-a:100"}`, current, true},
		{"date only, two days old: expired", `{"action":"drain","requested_at":"2026-11-21","epoch":"boot-a:100"}`, current, false},
		{"space for T, naive, two hours old: expired", `{"action":"drain","requested_at":"2026-11-23 10:00:00","epoch":"boot-a:100"}`, current, false},
		{"any one character for T", `{"action":"drain","requested_at":"2026-11-23x10:00","epoch":"boot-a:100"}`, current, false},
		{"basic format with an offset: expired", `{"action":"drain","requested_at":"20261123T1100+0100","epoch":"boot-a:100"}`, current, false},
		{"a comma before the fraction, fresh", `{"action":"drain","requested_at":"2026-11-23T11:59:30,5+00:00","epoch":"boot-a:100"}`, current, true},
		{"an impossible date: unparseable, honoured", `{"action":"drain","requested_at":"2026-02-30T08:00:00","epoch":"boot-a:100"}`, current, true},
		{"requested_at not a string: honoured", `{"action":"drain","requested_at":1732000000,"epoch":"boot-a:100"}`, current, true},
		{"a \"<boot_id>:\" epoch against a full one: stale", `{"action":"drain","epoch":"boot-a:"}`, current, false},
		{"a \"<boot_id>:\" epoch against the same: honoured", `{"action":"drain","epoch":"boot-a:"}`, "boot-a:", true},
		{"a full epoch against a \"<boot_id>:\" gateway: stale", `{"action":"drain","epoch":"boot-a:100"}`, "boot-a:", false},
		{"extra fields ignored", `{"action":"drain","epoch":"boot-a:100","kubernetes":{"x":1},"suppress_notification":true}`, current, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Parse([]byte(tc.content)).Honoured(tc.current, now); got != tc.want {
				t.Errorf("Honoured = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRenderAssembleRoundTrip(t *testing.T) {
	req := Request{
		Principal:            `ops "x" <&> ` + "`id` $(rm) \\ ünï",
		SuppressNotification: true,
		Origin:               Origin{GatewayDrainUID: "u-1", GatewayDrain: "ns/d", Pod: "ns/p", PodUID: "p-1", Container: "gateway", RestartCount: 2},
	}
	rendered, err := Render(req)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 23, 8, 0, 0, 123456789, time.FixedZone("X", 3600)) // the container's clock
	raw := []byte(rendered.Text(at, current))
	f := Parse(raw)
	if f.Corrupt() || f.Principal() != req.Principal || f.EpochValue() != current {
		t.Fatalf("round trip lost data: %s", raw)
	}
	if got, ok := f.RequestedAt(); !ok || !got.Equal(at.Truncate(time.Microsecond)) {
		t.Errorf("requested_at %v, want %v", got, at)
	}
	if !strings.Contains(string(raw), `"requested_at":"2026-11-23T07:00:00.123456+00:00"`) {
		t.Errorf("requested_at not in upstream's isoformat: %s", raw)
	}
	if o, ok := f.Origin(); !ok || o != req.Origin {
		t.Errorf("origin %+v, want %+v", o, req.Origin)
	}
	if !strings.Contains(string(raw), OwnerToken("u-1")) || strings.Contains(string(raw), OwnerToken("u-2")) {
		t.Errorf("owner token does not identify the writer: %s", raw)
	}
	if !strings.HasPrefix(string(raw), `{"action":"drain","requested_at":`) {
		t.Errorf("field order differs from upstream: %s", raw)
	}
}

func TestEpochRecipe(t *testing.T) {
	stat := func(comm string) string {
		return "1 (" + comm + ") S 0 1 1 0 -1 4194560 100 200 0 0 5 6 0 0 20 0 1 0 4242 1000 50 18446744073709551615\n"
	}
	cases := []struct {
		name, boot, stat, want string
	}{
		{"plain", "abc-123\n", stat("init"), "abc-123:4242"},
		{"spaces in comm", " abc-123 ", stat("my init"), "abc-123:4242"},
		{"parentheses in comm", "abc-123", stat("a) (b) c"), "abc-123:4242"},
		{"comm ending with ')'", "abc-123", stat("x)"), "abc-123:4242"},
		{"no boot id", "", stat("init"), ":4242"},
		{"unreadable stat", "abc-123", "", "abc-123:"},
		{"truncated stat", "abc-123", "1 (init) S 0 1", "abc-123:"},
		{"nothing readable", "", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Epoch(tc.boot, tc.stat); got != tc.want {
				t.Errorf("Epoch = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParseGatewayState(t *testing.T) {
	fresh := iso(now.Add(-10 * time.Second))
	cases := []struct {
		name                  string
		content               string
		wantErr               bool
		startTime             string
		accepts, drainedState bool
	}{
		{"running", `{"gateway_state":"running","active_agents":0,"updated_at":"` + fresh + `"}`, false, "", true, false},
		{"degraded", `{"gateway_state":"degraded","active_agents":1}`, false, "", true, false},
		{"draining with agents", `{"gateway_state":"draining","active_agents":3}`, false, "", false, false},
		{"drained", `{"gateway_state":"draining","active_agents":0,"updated_at":"` + fresh + `"}`, false, "", false, true},
		{"draining, agents missing", `{"gateway_state":"draining"}`, false, "", false, true},
		{"starting", `{"gateway_state":"starting"}`, false, "", false, false},
		{"stopped", `{"gateway_state":"stopped","exit_reason":"sigterm"}`, false, "", false, false},
		{"startup_failed", `{"gateway_state":"startup_failed"}`, false, "", false, false},
		{"writer's start time as a number", `{"gateway_state":"running","pid":7,"start_time":123456}`, false, "123456", true, false},
		{"writer's start time as a string", `{"gateway_state":"running","pid":7,"start_time":"123456"}`, false, "123456", true, false},
		{"writer's start time of another type", `{"gateway_state":"running","pid":7,"start_time":[1]}`, false, "", true, false},
		{"writer's start time not a number", `{"gateway_state":"running","pid":7,"start_time":"12\u001b[2J"}`, false, "", true, false},
		{"writer's start time too large", `{"gateway_state":"running","pid":7,"start_time":1e300}`, false, "", true, false},
		{"a state upstream never writes", `{"gateway_state":"running\u001b[2J"}`, false, "", false, false},
		{"corrupt", `{"gateway_state":`, true, "", false, false},
		{"no state", `{"active_agents":0}`, true, "", false, false},
		{"state not a string", `{"gateway_state":1}`, true, "", false, false},
		{"negative agents", `{"gateway_state":"draining","active_agents":-1}`, true, "", false, false},
		{"fractional agents", `{"gateway_state":"draining","active_agents":1.5}`, true, "", false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, err := ParseGatewayState([]byte(tc.content))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if st.StartTime != tc.startTime || st.AcceptsTurns() != tc.accepts || st.DrainComplete() != tc.drainedState {
				t.Errorf("%+v: start time %q accepts %v drained %v", st, st.StartTime, st.AcceptsTurns(), st.DrainComplete())
			}
		})
	}
}

// What a record says beyond its state: whether its gateway counts all its
// work (issue 24, item 7), whether it multiplexes profiles, whether the
// container's boot wrote it, and what a person wants of it.
func TestParseGatewayStateReadsWhatTheWriterShows(t *testing.T) {
	for _, tc := range []struct {
		name, content   string
		countsAll, boot bool
		served          int
		desired         string
	}{
		{"before v0.20.6: nothing shows it", `{"kind":"hermes-gateway","gateway_state":"running","pid":7}`, false, false, 0, ""},
		{"v0.20.6: code_version", `{"kind":"hermes-gateway","gateway_state":"running","pid":7,"code_version":"0.20.6","code_sha":null}`, true, false, 0, ""},
		{"a code_sha alone", `{"kind":"hermes-gateway","gateway_state":"running","pid":7,"code_sha":"00067189"}`, true, false, 0, ""},
		{"an unknown version is a version", `{"kind":"hermes-gateway","gateway_state":"running","pid":7,"code_version":"unknown"}`, true, false, 0, ""},
		{"a null version says nothing", `{"kind":"hermes-gateway","gateway_state":"running","pid":7,"code_version":null}`, false, false, 0, ""},
		{"active_work null outside a drain", `{"kind":"hermes-gateway","gateway_state":"stopped","pid":7,"active_work":null}`, true, false, 0, ""},
		{"active_work listed", `{"kind":"hermes-gateway","gateway_state":"draining","pid":7,"active_work":[{"kind":"api","pid":7}]}`, true, false, 0, ""},
		{"a multiplexer", `{"kind":"hermes-gateway","gateway_state":"running","pid":7,"served_profiles":["a","b"]}`, false, false, 2, ""},
		{"the boot's record", `{"gateway_state":"running","desired_state":"running"}`, false, true, 0, "running"},
		{"stopped on purpose", `{"kind":"hermes-gateway","gateway_state":"stopped","desired_state":"stopped","pid":7}`, false, false, 0, "stopped"},
		{"a record without a PID is a gateway's", `{"gateway_state":"running"}`, false, false, 0, ""},
	} {
		st, err := ParseGatewayState([]byte(tc.content))
		if err != nil || st.CountsAllWork != tc.countsAll || st.BootPlaceholder != tc.boot || st.ServedProfiles != tc.served || st.DesiredState != tc.desired {
			t.Errorf("%s: %+v %v; want counts all %v, boot %v, %d served, desired %q", tc.name, st, err, tc.countsAll, tc.boot, tc.served, tc.desired)
		}
	}
}
