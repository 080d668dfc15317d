package calls

import (
	"strings"
	"testing"
)

const (
	liveStat = "77 (python3) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 4711 1 1"
	newStat  = "77 (python3) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 9999 1 1"
)

func present(s string) File { return File{State: FilePresent, Data: []byte(s)} }

// Each rung of the liveness ladder, as upstream's readers climb it: the
// pid file and the record, each against the live process.
func TestGatewayStateNowClimbsUpstreamsLadder(t *testing.T) {
	record := present(`{"kind":"hermes-gateway","gateway_state":"draining","active_agents":0,"pid":77,"start_time":4711}`)
	for _, tc := range []struct {
		name       string
		home       GatewayHome
		wantReason string // "" for a state
		definite   bool
		running    bool
	}{
		{"a live writer", GatewayHome{GatewayState: record, GatewayProcess: Process{PID: 77, Stat: liveStat}}, "", false, true},
		{"a dead writer", GatewayHome{GatewayState: record, GatewayProcess: Process{PID: 77}}, ReasonGatewayGone, true, false},
		{"a zombie writer", GatewayHome{GatewayState: record, GatewayProcess: Process{PID: 77, Stat: strings.Replace(liveStat, " S ", " Z ", 1)}}, ReasonGatewayGone, true, false},
		{"a reused PID", GatewayHome{GatewayState: record, GatewayProcess: Process{PID: 77, Stat: newStat}}, ReasonGatewayGone, true, false},
		{"a dead writer, a live gateway.pid", GatewayHome{GatewayState: record, GatewayProcess: Process{PID: 77},
			PIDFile: present(`{"pid": 88, "start_time": 4711}`), PIDProcess: Process{PID: 88, Stat: liveStat}}, ReasonStarting, false, true},
		{"a dead writer, a dead gateway.pid", GatewayHome{GatewayState: record, GatewayProcess: Process{PID: 77},
			PIDFile: present(`{"pid": 88, "start_time": 4711}`), PIDProcess: Process{PID: 88}}, ReasonGatewayGone, true, false},
		{"no record, a live bare gateway.pid", GatewayHome{GatewayState: File{State: FileAbsent}, PIDFile: present("88"), PIDProcess: Process{PID: 88, Stat: liveStat}}, ReasonStarting, false, true},
		{"no record, nothing else", GatewayHome{GatewayState: File{State: FileAbsent}}, ReasonNoState, false, true},
		{"the boot's record", GatewayHome{GatewayState: present(`{"gateway_state":"running","desired_state":"running"}`)}, ReasonNotStarted, true, false},
		{"a record without a PID", GatewayHome{GatewayState: present(`{"gateway_state":"running"}`)}, "", false, true},
		{"stopped on purpose", GatewayHome{GatewayState: present(`{"kind":"hermes-gateway","gateway_state":"stopped","desired_state":"stopped","pid":77,"start_time":4711}`),
			GatewayProcess: Process{PID: 77, Stat: liveStat}}, "", false, false},
		{"failed to start", GatewayHome{GatewayState: present(`{"kind":"hermes-gateway","gateway_state":"startup_failed","pid":77}`),
			GatewayProcess: Process{PID: 77, Stat: liveStat}}, "", false, false},
		{"an unreadable record", GatewayHome{GatewayState: File{State: FileUnreadable}}, ReasonStateUnreadable, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, problem := tc.home.GatewayStateNow()
			switch {
			case tc.wantReason == "" && problem != nil:
				t.Errorf("problem %+v, want the state", problem)
			case tc.wantReason != "" && (problem == nil || problem.Reason != tc.wantReason || problem.Definite != tc.definite):
				t.Errorf("problem %+v (state %+v), want %s definite=%v", problem, st, tc.wantReason, tc.definite)
			}
			g := Gateway{Home: tc.home, State: st, Problem: problem}
			if g.Running() != tc.running {
				t.Errorf("running %v (%q), want %v", g.Running(), g.NotRunning(), tc.running)
			}
		})
	}
}

// A container's gateways: the root's always; a profile's when it runs one
// of its own, or holds a marker the caller counts; under multiplex, the
// root's alone.
func TestGatewaysAreTheRootAndEveryProfileThatRunsOne(t *testing.T) {
	live := func(extra string) GatewayHome {
		return GatewayHome{GatewayState: present(`{"kind":"hermes-gateway","gateway_state":"running","pid":77,"start_time":4711` + extra + `}`), GatewayProcess: Process{PID: 77, Stat: liveStat}}
	}
	dead := GatewayHome{GatewayState: present(`{"kind":"hermes-gateway","gateway_state":"running","pid":66}`), GatewayProcess: Process{PID: 66}}
	ours := dead
	ours.Marker = present(`{"action":"drain","ours":true}`)
	profiles := []Profile{{Name: "alice", GatewayHome: live("")}, {Name: "bob", GatewayHome: dead}, {Name: "carol", GatewayHome: GatewayHome{GatewayState: File{State: FileAbsent}}}, {Name: "dave", GatewayHome: ours}}
	keep := func(h GatewayHome) bool { return strings.Contains(string(h.Marker.Data), `"ours"`) }
	names := func(gs []Gateway) string {
		var n []string
		for _, g := range gs {
			n = append(n, g.Profile)
		}
		return strings.Join(n, ",")
	}
	standalone := Observation{GatewayHome: live(""), Profiles: profiles, ProfileCount: 4}
	if got := names(standalone.Gateways(keep)); got != "default,alice,dave" {
		t.Errorf("standalone: %s, want default,alice,dave", got)
	}
	multiplex := Observation{GatewayHome: live(`,"served_profiles":["alice","bob"]`), Profiles: profiles, ProfileCount: 4}
	if got := names(multiplex.Gateways(keep)); got != "default" {
		t.Errorf("multiplex: %s, want default", got)
	}
	deadMultiplexer := Observation{GatewayHome: dead, Profiles: profiles, ProfileCount: 4}
	deadMultiplexer.GatewayState = present(`{"gateway_state":"running","pid":66,"served_profiles":["alice"]}`)
	if got := names(deadMultiplexer.Gateways(nil)); got != "default,alice" {
		t.Errorf("a dead multiplexer beside a live profile gateway: %s, want default,alice", got)
	}
}
