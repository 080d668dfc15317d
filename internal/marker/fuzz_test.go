package marker

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// A marker file's content never panics the parser, and whatever cannot be
// read as a JSON object is honoured (upstream's fail-safe).
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		`{"action":"drain","requested_at":"2026-11-23T08:00:00.123456+00:00","principal":"p","epoch":"a:1"}`,
		`{"epoch":5}`, `[]`, `"x"`, `{`, "", "{\"epoch\":\"\xff\"}", `{"kubernetes":{"gatewayDrainUID":1}}`, `null`,
		`{"requested_at":null,"epoch":[],"kubernetes":{"gatewayDrainUID":"u"}}`,
	} {
		f.Add([]byte(seed), "a:1")
	}
	now := time.Date(2026, 11, 23, 8, 30, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, raw []byte, current string) {
		found := Parse(raw)
		honoured := found.Honoured(current, now)
		if found.Corrupt() && !honoured {
			t.Fatalf("a corrupt marker %q was not honoured", raw)
		}
		if _, ok := found.Origin(); ok && found.Corrupt() {
			t.Fatalf("a corrupt marker has an origin")
		}
	})
}

// Whatever we render reads back as written: principal, epoch and origin.
func FuzzRenderRoundTrip(f *testing.F) {
	f.Add(`ops "x" <&> $(id) `+"`id`", "u-1", "gw-0", int64(0))
	f.Add("", "", "", int64(1<<40))
	f.Add("\u2028 ünï \\ /", "ffff", "p", int64(-5))
	f.Fuzz(func(t *testing.T, principal, uid, pod string, nanos int64) {
		if !utf8.ValidString(principal) || !utf8.ValidString(uid) || !utf8.ValidString(pod) {
			t.Skip("the API server only stores UTF-8")
		}
		req := Request{Principal: principal, Origin: Origin{GatewayDrainUID: uid, Pod: pod}}
		rendered, err := Render(req)
		if err != nil {
			t.Fatal(err)
		}
		raw := []byte(rendered.Text(time.Unix(0, nanos), "boot:42"))
		found := Parse(raw)
		o, ok := found.Origin()
		if found.Corrupt() || found.Principal() != principal || found.EpochValue() != "boot:42" || (uid != "" && (!ok || o.Pod != pod)) {
			t.Fatalf("%q did not read back", raw)
		}
		if !strings.Contains(string(raw), OwnerToken(uid)) {
			t.Fatalf("%q lacks its owner token", raw)
		}
	})
}

func FuzzParseGatewayState(f *testing.F) {
	for _, seed := range []string{
		`{"gateway_state":"draining","active_agents":3,"updated_at":"2026-11-23T08:00:00+00:00"}`,
		`{"gateway_state":1}`, `{"active_agents":-1,"gateway_state":"x"}`, `{"active_agents":1e99,"gateway_state":"x"}`, `[]`, ``,
		`{"gateway_state":"\u001b]52;c;aGk=\u0007\u202e` + strings.Repeat("x", 100) + `","start_time":1e300,"updated_at":"2026-11-23T08:00:00.` + strings.Repeat("1", 100) + `Z"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		st, err := ParseGatewayState(raw)
		if err != nil {
			return
		}
		if st.State == "" || st.ActiveAgents < 0 {
			t.Fatalf("accepted %q as %+v", raw, st)
		}
		if st.DrainComplete() && st.AcceptsTurns() {
			t.Fatalf("%+v both drained and accepting turns", st)
		}
		// Only bounded forms come out of a file a hostile gateway may write.
		if !slices.Contains(knownStates, st.State) && st.State != StateUnknown || Printable(st.Written) != st.Written || len(st.Written) > 3*(writtenExcerpt+len("...")) {
			t.Fatalf("%q parsed to state %q, written as %q", raw, st.State, st.Written)
		}
		if _, err := ParseTime(st.UpdatedAt); st.UpdatedAt != "" && (err != nil || len(st.UpdatedAt) > len(time.RFC3339Nano)) {
			t.Fatalf("%q parsed to updated_at %q", raw, st.UpdatedAt)
		}
		if _, err := strconv.ParseUint(st.StartTime, 10, 64); st.StartTime != "" && err != nil {
			t.Fatalf("%q parsed to start time %q", raw, st.StartTime)
		}
	})
}

// The starttime is found whatever the command name holds.
func FuzzProcStatStartTime(f *testing.F) {
	f.Add("init", "4242")
	f.Add("a) (b", "1")
	f.Add(")", "99")
	f.Fuzz(func(t *testing.T, comm, start string) {
		if start == "" || strings.ContainsAny(start, " \t\n\v\f\r)\u0085\u00a0") || !utf8.ValidString(start) || strings.TrimSpace(start) != start {
			t.Skip()
		}
		stat := "1 (" + comm + ") S" + strings.Repeat(" 0", 18) + " " + start + " 10 20\n"
		got, err := ProcStatStartTime(stat)
		if err != nil || got != start {
			t.Fatalf("comm %q: got %q, %v; want %q", comm, got, err, start)
		}
		_, _ = ProcStatStartTime(comm) // never panics on anything
	})
}
