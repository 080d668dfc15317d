package transport

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hermes-agent/hermes-drain-operator/internal/calls"
	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
)

// implementations are every way the three calls run: program.sh under each
// shell it must run on, and in this process (the agent).
func implementations(t *testing.T, proc string) map[string]Transport {
	t.Helper()
	all := map[string]Transport{"in-process": calls.InProcess{ProcRoot: proc}}
	for shell, sh := range shells(t) {
		all[shell] = NewProgram(sh, proc)
	}
	return all
}

// call is one call of a conformance scenario.
type call struct {
	op    string // project, clear or read
	owner string // the GatewayDrain's UID
	// replaceable names a foreign marker the project may overwrite.
	replaceable string
	// profiles names the profile homes a project writes to too.
	profiles []string
}

// stale is a dashboard's marker from an older instantiation.
const stale = `{"action": "drain", "requested_at": "2026-01-01T00:00:00+00:00", "principal": "dashboard", "epoch": "old:1"}` + "\n\n"

// Every implementation, given the same home, answers every call the same
// way (outcome, epoch, home, both files, the state file's process, the
// error) and leaves the same files behind: one contract, whichever way the
// operator reaches a gateway.
func TestEveryImplementationKeepsOneContract(t *testing.T) {
	write := func(name, content string) func(string) error {
		return func(home string) error { return os.WriteFile(filepath.Join(home, name), []byte(content), 0o644) }
	}
	link := func(name, target string) func(string) error {
		return func(home string) error { return os.Symlink(target, filepath.Join(home, name)) }
	}
	fifo := func(name string) func(string) error {
		return func(home string) error { return syscall.Mkfifo(filepath.Join(home, name), 0o644) }
	}
	dir := func(name string) func(string) error {
		return func(home string) error { return os.Mkdir(filepath.Join(home, name), 0o755) }
	}
	dirMode := func(name string, mode os.FileMode) func(string) error {
		return func(home string) error {
			if err := os.Mkdir(filepath.Join(home, name), 0o755); err != nil {
				return err
			}
			return os.Chmod(filepath.Join(home, name), mode)
		}
	}
	lifecycle := []call{{op: "read"}, {op: "project", owner: "uid-1"}, {op: "project", owner: "uid-1"},
		{op: "project", owner: "uid-2"}, {op: "clear", owner: "uid-2"}, {op: "clear", owner: "uid-1"}, {op: "clear", owner: "uid-1"}}
	writeAndClear := []call{{op: "project", owner: "uid-1"}, {op: "clear", owner: "uid-1"}, {op: "read"}}
	profiles := []call{{op: "read"}, {op: "project", owner: "uid-1", profiles: []string{"alice", "bob", "evil"}}, {op: "project", owner: "uid-1", profiles: []string{"alice"}},
		{op: "project", owner: "uid-2", profiles: []string{"alice"}}, {op: "clear", owner: "uid-1"}, {op: "read"}}
	many := make([]func(string) error, 0, calls.MaxProfiles+3)
	many = append(many, dir("profiles"))
	for i := range calls.MaxProfiles + 2 {
		many = append(many, dir(fmt.Sprintf("profiles/p%02d", i)))
	}
	for name, tc := range map[string]struct {
		setup []func(home string) error
		home  string // "" for the scenario's own folder
		at    string // HERMES_HOME's path below that folder, if not the folder
		calls []call
	}{
		"a lifecycle in an empty home": {calls: lifecycle},
		"a lifecycle beside a state file": {setup: []func(string) error{write(marker.StateFilename, `{"gateway_state": "running", "active_agents": 2, "pid": 77}`+"\n")},
			calls: lifecycle},
		"a stale marker, named or not": {setup: []func(string) error{write(marker.Filename, stale)},
			calls: []call{{op: "project", owner: "uid-1", replaceable: `{"other": 1}`}, {op: "project", owner: "uid-1", replaceable: stale}, {op: "clear", owner: "uid-1"}}},
		"an empty marker":                         {setup: []func(string) error{write(marker.Filename, "")}, calls: writeAndClear},
		"a marker that is a directory":            {setup: []func(string) error{dir(marker.Filename)}, calls: writeAndClear},
		"a marker that is a FIFO":                 {setup: []func(string) error{fifo(marker.Filename)}, calls: writeAndClear},
		"a marker linked to /dev/zero":            {setup: []func(string) error{link(marker.Filename, "/dev/zero")}, calls: writeAndClear},
		"a marker linked to a file":               {setup: []func(string) error{write("elsewhere", "precious"), link(marker.Filename, "elsewhere")}, calls: writeAndClear},
		"a dangling link as marker":               {setup: []func(string) error{link(marker.Filename, "nowhere")}, calls: writeAndClear},
		"a huge marker":                           {setup: []func(string) error{write(marker.Filename, strings.Repeat("x", 1<<20))}, calls: writeAndClear},
		"a state file that is a FIFO":             {setup: []func(string) error{fifo(marker.StateFilename)}, calls: writeAndClear},
		"a state file linked elsewhere":           {setup: []func(string) error{write("elsewhere", `{"pid": 77}`), link(marker.StateFilename, "elsewhere")}, calls: writeAndClear},
		"a state file naming a dead PID":          {setup: []func(string) error{write(marker.StateFilename, `{"gateway_state":"draining","pid":  4242}`)}, calls: writeAndClear},
		"a state file naming a huge PID":          {setup: []func(string) error{write(marker.StateFilename, `{"pid": 99999999999999999999999}`)}, calls: writeAndClear},
		"a state file naming no digits":           {setup: []func(string) error{write(marker.StateFilename, `{"pid": "x"}`)}, calls: writeAndClear},
		"a missing home":                          {home: "/nonexistent/home", calls: writeAndClear},
		"a relative home":                         {home: "data", calls: writeAndClear},
		"the root as home":                        {home: "/", calls: []call{{op: "read"}}},
		"a home that is a file":                   {home: "/etc/hostname", calls: writeAndClear},
		"hostile values stay data (owner)":        {calls: []call{{op: "project", owner: `$(touch pwned)"; '` + "`x`"}, {op: "clear", owner: `$(touch pwned)"; '` + "`x`"}}},
		"a home below a world-writable directory": {setup: []func(string) error{dirMode("open", 0o777), dir("open/data")}, at: "open/data", calls: writeAndClear},
		"a home below a sticky directory":         {setup: []func(string) error{dirMode("tmp", 0o777|os.ModeSticky), dir("tmp/data")}, at: "tmp/data", calls: lifecycle},
		"a home below a link":                     {setup: []func(string) error{dir("real"), dir("real/data"), link("link", "real")}, at: "link/data", calls: writeAndClear},
		"a home that is a link":                   {setup: []func(string) error{dir("real"), link("link", "real")}, at: "link", calls: writeAndClear},
		"a home below a file":                     {setup: []func(string) error{write("file", "")}, at: "file/data", calls: writeAndClear},
		"profile homes, and what is none": {setup: []func(string) error{dir("profiles"), dir("profiles/alice"), dir("profiles/bob"), dir("profiles/.tmp"), dir("profiles/Coder"),
			dir("profiles/bob.deleted"), dir("elsewhere"), link("profiles/evil", "../elsewhere"), write("profiles/file", ""),
			write("profiles/alice/"+marker.StateFilename, `{"gateway_state":"running","pid":77,"start_time":4711}`), write("profiles/alice/"+marker.PIDFilename, `{"pid": 77, "start_time": 4711}`),
			write("profiles/bob/"+marker.PIDFilename, "4242\n")},
			calls: profiles},
		"profiles that are a link":         {setup: []func(string) error{dir("real"), dir("real/alice"), link("profiles", "real")}, calls: profiles},
		"a profile's marker a directory":   {setup: []func(string) error{dir("profiles"), dir("profiles/alice"), dir("profiles/alice/" + marker.Filename)}, calls: profiles},
		"a profile's marker linked":        {setup: []func(string) error{dir("profiles"), dir("profiles/alice"), write("precious", "x"), link("profiles/alice/"+marker.Filename, "../../precious")}, calls: profiles},
		"more profiles than are looked at": {setup: many, calls: []call{{op: "read"}, {op: "project", owner: "uid-1", profiles: []string{"p00", "p33"}}, {op: "clear", owner: "uid-1"}}},
	} {
		t.Run(name, func(t *testing.T) {
			proc := fakeProc(t, bootID, statLine("init", "42"))
			if err := os.MkdirAll(filepath.Join(proc, "77"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(proc, "77", "stat"), []byte(statLine("gateway", "4711")), 0o644); err != nil {
				t.Fatal(err)
			}
			var want []string
			var wantName string
			for impl, tr := range implementations(t, proc) {
				home := t.TempDir()
				for _, setup := range tc.setup {
					if err := setup(home); err != nil {
						t.Fatal(err)
					}
				}
				target := filepath.Join(home, tc.at)
				if tc.home != "" {
					target = tc.home
				}
				got := runCalls(t, tr, target, tc.calls)
				got = append(got, "files: "+listing(t, home))
				for i := range got {
					got[i] = strings.ReplaceAll(got[i], home, "HOME")
				}
				if want == nil {
					want, wantName = got, impl
					continue
				}
				if !slices.Equal(got, want) {
					t.Errorf("%s and %s differ:\n%s\n--- vs ---\n%s", impl, wantName, strings.Join(got, "\n"), strings.Join(want, "\n"))
				}
			}
		})
	}
}

// runCalls runs the calls and describes what each saw.
func runCalls(t *testing.T, tr Transport, home string, steps []call) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var seen []string
	for _, c := range steps {
		var obs calls.Observation
		var err error
		switch c.op {
		case "project":
			req := request(c.owner, "me")
			req.Replaceable, req.Profiles = []byte(c.replaceable), c.profiles
			obs, err = tr.Project(ctx, calls.Pod{}, home, req)
		case "clear":
			obs, err = tr.Clear(ctx, calls.Pod{}, home, c.owner)
		default:
			obs, err = tr.Read(ctx, calls.Pod{}, home)
		}
		seen = append(seen, fmt.Sprintf("%s %s %v: epoch=%s home=%s %s profiles=%d err=%v", c.op, c.owner, c.profiles,
			obs.Epoch, obs.Home, describeHome(obs.GatewayHome), obs.ProfileCount, err))
		for _, p := range obs.Profiles {
			seen = append(seen, fmt.Sprintf("  profile %s: %s message=%q", p.Name, describeHome(p.GatewayHome), p.Message))
		}
	}
	return seen
}

func describeHome(h calls.GatewayHome) string {
	return fmt.Sprintf("%s marker=%s state=%s proc=%+v pid=%s pidproc=%+v", h.Outcome, describe(h.Marker), describe(h.GatewayState), h.GatewayProcess, describe(h.PIDFile), h.PIDProcess)
}

func describe(f calls.File) string {
	if f.Data == nil {
		return string(f.State)
	}
	return fmt.Sprintf("%s(%d bytes %q)", f.State, len(f.Data), marker.Shorten(string(withoutTime(f.Data)), 300))
}

// ourTime is the requested_at our markers carry: each implementation's own
// clock, which the comparisons leave out (TestOurMarkerCarriesTheContainersClock
// checks it).
var ourTime = regexp.MustCompile(`"requested_at":"[^"]*"`)

func withoutTime(b []byte) []byte { return ourTime.ReplaceAll(b, []byte(`"requested_at":"TIME"`)) }

// Every implementation stamps our marker with the time of the host it runs
// on, the gateway's: upstream measures its hour on that clock.
func TestOurMarkerCarriesTheContainersClock(t *testing.T) {
	proc := fakeProc(t, bootID, statLine("init", "42"))
	for impl, tr := range implementations(t, proc) {
		home := t.TempDir()
		before := time.Now().Truncate(time.Second)
		obs, err := tr.Project(context.Background(), calls.Pod{}, home, request("uid-1", "me"))
		after := time.Now()
		if err != nil || obs.Outcome != calls.Written {
			t.Fatalf("%s: %v %v", impl, obs.Outcome, err)
		}
		at, ok := marker.Parse(obs.Marker.Data).RequestedAt()
		if !ok || at.Before(before) || at.After(after) {
			t.Errorf("%s: requested_at %v, want the host's time, within [%v, %v]", impl, at, before, after)
		}
	}
}

// listing is every name below home with its type, mode and content.
func listing(t *testing.T, home string) string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(home, func(path string, e os.DirEntry, err error) error {
		if err != nil || path == home {
			return err
		}
		fi, err := os.Lstat(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(home, path)
		desc := rel + " " + fi.Mode().String()
		if fi.Mode().IsRegular() {
			b, _ := os.ReadFile(path)
			b = withoutTime(b)
			desc += fmt.Sprintf(" %d bytes %x", len(b), bytes.TrimSpace(b[:min(len(b), 64)]))
		}
		out = append(out, desc)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(out, "; ")
}
