package transport

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hermes-agent/hermes-drain-operator/internal/calls"
	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
)

// fakeProc writes a /proc with the given boot id and PID 1 stat line.
func fakeProc(t *testing.T, bootID, stat string) string {
	t.Helper()
	root := t.TempDir()
	for path, content := range map[string]string{
		"sys/kernel/random/boot_id": bootID + "\n",
		"1/stat":                    stat,
	} {
		p := filepath.Join(root, path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// statLine is a /proc/1/stat line whose starttime (field 22) is start.
func statLine(comm, start string) string {
	fields := []string{"S"}
	for i := 4; i <= 21; i++ {
		fields = append(fields, "0")
	}
	fields = append(fields, start, "1234", "5678")
	return "1 (" + comm + ") " + strings.Join(fields, " ") + "\n"
}

const bootID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"

func request(uid, principal string) calls.ProjectRequest {
	return calls.ProjectRequest{Marker: marker.Request{
		Principal: principal,
		Origin:    marker.Origin{GatewayDrainUID: uid, GatewayDrain: "ns/drain", Pod: "ns/gw-0", PodUID: "pod-uid", Container: "gateway"},
	}}
}

func TestProgramEpochMatchesTheContract(t *testing.T) {
	for _, comm := range []string{"init", "s6-svscan", "my (weird) init) x", "a b c", ")"} {
		stat := statLine(comm, "98765")
		proc := fakeProc(t, bootID, stat)
		p := NewProgram(LocalRunner{}, proc)
		obs, err := p.Read(context.Background(), calls.Pod{}, t.TempDir())
		if err != nil {
			t.Fatalf("comm %q: %v", comm, err)
		}
		want := marker.Epoch(bootID, stat)
		if obs.Epoch != want || want != bootID+":98765" {
			t.Errorf("comm %q: program epoch %q, contract epoch %q", comm, obs.Epoch, want)
		}
	}
}

func TestProgramProjectClearLifecycle(t *testing.T) {
	ctx := context.Background()
	proc := fakeProc(t, bootID, statLine("init", "42"))
	p := NewProgram(LocalRunner{}, proc)
	home := t.TempDir()
	path := filepath.Join(home, marker.Filename)
	if err := os.WriteFile(filepath.Join(home, marker.StateFilename), []byte(`{"gateway_state":"running","active_agents":2}`), 0o644); err != nil {
		t.Fatal(err)
	}

	obs, err := p.Project(ctx, calls.Pod{}, home, request("uid-1", "me"))
	if err != nil || obs.Outcome != calls.Written {
		t.Fatalf("project: %v %v", obs.Outcome, err)
	}
	onDisk, _ := os.ReadFile(path)
	if string(obs.Marker.Data) != string(onDisk) {
		t.Errorf("read-back %q differs from disk %q", obs.Marker.Data, onDisk)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
		t.Errorf("marker mode %v, want 0644", fi.Mode().Perm())
	}
	found := marker.Parse(onDisk)
	if found.EpochValue() != bootID+":42" || !found.Honoured(bootID+":42", time.Date(2026, 11, 23, 8, 30, 0, 0, time.UTC)) {
		t.Errorf("marker %s not honoured by its own instantiation", onDisk)
	}
	if st, err := marker.ParseGatewayState(obs.GatewayState.Data); err != nil || st.State != "running" || st.ActiveAgents != 2 {
		t.Errorf("gateway state read back as %+v, %v", st, err)
	}

	if obs, err = p.Project(ctx, calls.Pod{}, home, request("uid-1", "me")); err != nil || obs.Outcome != calls.Refreshed {
		t.Fatalf("second project: %v %v", obs.Outcome, err)
	}
	if obs, err = p.Project(ctx, calls.Pod{}, home, request("uid-2", "other")); err != nil || obs.Outcome != calls.Foreign {
		t.Fatalf("project by another owner: %v %v", obs.Outcome, err)
	}
	if obs, err = p.Clear(ctx, calls.Pod{}, home, "uid-2"); err != nil || obs.Outcome != calls.Foreign {
		t.Fatalf("clear by another owner: %v %v", obs.Outcome, err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("a foreign clear removed the marker: %v", err)
	}
	if obs, err = p.Clear(ctx, calls.Pod{}, home, "uid-1"); err != nil || obs.Outcome != calls.Cleared || obs.Marker.State != calls.FileAbsent {
		t.Fatalf("clear: %v %v %v", obs.Outcome, obs.Marker.State, err)
	}
	if obs, err = p.Clear(ctx, calls.Pod{}, home, "uid-1"); err != nil || obs.Outcome != calls.Absent {
		t.Fatalf("second clear: %v %v", obs.Outcome, err)
	}
	leftovers, _ := filepath.Glob(filepath.Join(home, ".drain_request.json.?*"))
	if len(leftovers) != 0 {
		t.Errorf("temp files left behind: %v", leftovers)
	}
}

func TestProgramReplacesOnlyTheNamedForeignMarker(t *testing.T) {
	ctx := context.Background()
	p := NewProgram(LocalRunner{}, fakeProc(t, bootID, statLine("init", "42")))
	home := t.TempDir()
	path := filepath.Join(home, marker.Filename)
	stale := `{"action": "drain", "requested_at": "2026-01-01T00:00:00+00:00", "principal": "dashboard", "epoch": "old:1"}` + "\n"
	if err := os.WriteFile(path, []byte(stale), 0o644); err != nil {
		t.Fatal(err)
	}
	req := request("uid-1", "me")
	req.Replaceable = []byte(`{"something":"else"}`)
	if obs, err := p.Project(ctx, calls.Pod{}, home, req); err != nil || obs.Outcome != calls.Foreign {
		t.Fatalf("project over an unnamed foreign marker: %v %v", obs.Outcome, err)
	}
	req.Replaceable = []byte(stale)
	if obs, err := p.Project(ctx, calls.Pod{}, home, req); err != nil || obs.Outcome != calls.Replaced {
		t.Fatalf("project over the named stale marker: %v %v", obs.Outcome, err)
	}
}

func TestProgramHostileValuesStayData(t *testing.T) {
	ctx := context.Background()
	p := NewProgram(LocalRunner{}, fakeProc(t, bootID, statLine("init", "42")))
	base := t.TempDir()
	canary := filepath.Join(base, "pwned")
	hostile := []string{
		`$(touch ` + canary + `)`,
		"`touch " + canary + "`",
		`"; touch ` + canary + `; echo "`,
		`' ; touch ` + canary + ` ; '`,
		`%s%n%d \ \\ */*`,
		"--" + strings.Repeat("x", 4000),
	}
	for _, v := range hostile {
		home := filepath.Join(base, "home "+strings.NewReplacer("/", "_", "`", "_").Replace(v[:min(len(v), 40)]))
		if err := os.MkdirAll(home, 0o755); err != nil {
			t.Fatal(err)
		}
		obs, err := p.Project(ctx, calls.Pod{}, home, request("uid-1", v))
		if err != nil || obs.Outcome != calls.Written {
			t.Fatalf("project with %q: %v %v", v, obs.Outcome, err)
		}
		onDisk, err := os.ReadFile(filepath.Join(home, marker.Filename))
		if err != nil {
			t.Fatal(err)
		}
		if got := marker.Parse(onDisk).Principal(); got != v {
			t.Errorf("principal landed as %q, want %q", got, v)
		}
	}
	if _, err := os.Stat(canary); err == nil {
		t.Fatal("a hostile value was executed")
	}
}

func TestProgramReportsBrokenHomes(t *testing.T) {
	ctx := context.Background()
	p := NewProgram(LocalRunner{}, fakeProc(t, bootID, statLine("init", "42")))
	dirMarker := t.TempDir()
	if err := os.Mkdir(filepath.Join(dirMarker, marker.Filename), 0o755); err != nil {
		t.Fatal(err)
	}
	linked := t.TempDir()
	elsewhere := filepath.Join(t.TempDir(), "precious")
	if err := os.WriteFile(elsewhere, []byte("not a marker"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(elsewhere, filepath.Join(linked, marker.Filename)); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct{ home, want string }{
		"missing home":       {filepath.Join(t.TempDir(), "nope"), "is not a directory"},
		"marker a directory": {dirMarker, "is a directory"},
		"marker a symlink":   {linked, "is a symbolic link"},
	} {
		_, err := p.Project(ctx, calls.Pod{}, tc.home, request("uid-1", "me"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: project error %v, want it to say %q", name, err, tc.want)
		}
		if _, err := p.Clear(ctx, calls.Pod{}, tc.home, "uid-1"); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: clear error %v, want it to say %q", name, err, tc.want)
		}
		if left, _ := filepath.Glob(filepath.Join(tc.home, ".drain_request.json.?*")); len(left) != 0 {
			t.Errorf("%s: partial files left: %v", name, left)
		}
	}
	if b, _ := os.ReadFile(elsewhere); string(b) != "not a marker" {
		t.Errorf("the symlink's target was changed: %q", b)
	}
	if fi, err := os.Lstat(filepath.Join(linked, marker.Filename)); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the symlink was replaced or removed")
	}
}

func TestParseOutputRejectsForgedOrTruncatedReports(t *testing.T) {
	good := "hermes-drain/3 N\nepoch a:1\nhome /h\nresult read\nfile marker present\n{}\n--N-- ok\nfile state absent\nproc -\nfile pid absent\nproc -\n" +
		"profiles 1\nprofile ops\nresult read\nfile marker absent\nfile state absent\nproc -\nfile pid present\n7\n--N-- ok\nproc 7 7 (python3) S\nend N\n"
	if r, err := parseOutput([]byte(good), "N"); err != nil || r.Marker.State != calls.FilePresent || string(r.Marker.Data) != "{}" ||
		len(r.Profiles) != 1 || r.Profiles[0].Name != "ops" || string(r.Profiles[0].PIDFile.Data) != "7" || r.Profiles[0].PIDProcess.PID != 7 {
		t.Fatalf("good report: %+v %v", r, err)
	}
	cut := strings.Replace(good, "-- ok", "-- unreadable", 1) // cat failed part way
	if r, err := parseOutput([]byte(cut), "N"); err != nil || r.Marker.State != calls.FileUnreadable || r.Marker.Data != nil {
		t.Fatalf("a file that failed part way: %+v %v", r, err)
	}
	for name, out := range map[string]string{
		"empty":              "",
		"wrong nonce":        strings.ReplaceAll(good, "N", "M"),
		"truncated":          good[:len(good)-10],
		"no fence":           strings.Replace(good, "\n--N-- ok", "", 1),
		"bad verdict":        strings.Replace(good, "-- ok", "-- fine", 1),
		"unknown state":      strings.Replace(good, "state absent", "state weird", 1),
		"a profile too many": strings.Replace(good, "profiles 1", "profiles 2", 1),
		"a profile's name":   strings.Replace(good, "profile ops", "profile ../x", 1),
		"no profile count":   strings.Replace(good, "profiles 1\n", "", 1),
		"sh missing":         "OCI runtime exec failed: exec: \"sh\": executable file not found in $PATH",
	} {
		if _, err := parseOutput([]byte(out), "N"); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// echoingRunner fails the way some runtimes do: echoing the command line.
type echoingRunner struct{}

func (echoingRunner) Run(_ context.Context, _ calls.Pod, argv []string, _ []byte) ([]byte, error) {
	return nil, fmt.Errorf("error executing command in container: cmd start: %s: chdir /x: no such file or directory", strings.Join(argv, " "))
}

func TestRunnerErrorsStayReadable(t *testing.T) {
	_, err := NewProgram(echoingRunner{}, "/proc").Project(context.Background(), calls.Pod{}, "/opt/data", request("uid-1", strings.Repeat("p", 2000)))
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	if len(msg) > maxErrorLength+8 || strings.Contains(msg, "set -u") || !strings.Contains(msg, "<hermes-drain project>") || !strings.HasSuffix(msg, "chdir /x: no such file or directory") {
		t.Errorf("unreadable error (%d bytes): %s", len(msg), msg)
	}
}

// prefixed runs the program through a prefix command that constrains it.
type prefixed []string

func (p prefixed) Run(ctx context.Context, pod calls.Pod, argv []string, stdin []byte) ([]byte, error) {
	return LocalRunner{}.Run(ctx, pod, append(append([]string{}, p...), argv...), stdin)
}

// asUnprivileged runs the program as a user that file permissions bind. As
// root no permission stops anything, so a root test drops to nobody.
func asUnprivileged() prefixed {
	if os.Geteuid() != 0 {
		return nil
	}
	return prefixed{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"}
}

// onFullDisk runs the program with a file size limit of zero and SIGXFSZ
// ignored: every write into a file fails (EFBIG), as on a full disk (ENOSPC).
// Its standard output is a pipe, which the limit does not bind.
var onFullDisk = prefixed{"sh", "-c", `trap '' XFSZ; ulimit -f 0; exec "$@"`, "sh"}

func TestProgramReportsUnreadableReadOnlyAndFullHomes(t *testing.T) {
	ctx := context.Background()
	proc := fakeProc(t, bootID, statLine("init", "42"))
	if err := os.Chmod(proc, 0o755); err != nil { // t.TempDir is 0700
		t.Fatal(err)
	}
	plain := NewProgram(LocalRunner{}, proc)
	// home makes a HERMES_HOME with mode perm, holding our marker if withMarker.
	home := func(perm os.FileMode, withMarker bool) string {
		dir := filepath.Join(t.TempDir(), "home")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if withMarker {
			if obs, err := plain.Project(ctx, calls.Pod{}, dir, request("uid-1", "me")); err != nil || obs.Outcome != calls.Written {
				t.Fatalf("setup: %v %v", obs.Outcome, err)
			}
		}
		for d := dir; d != filepath.Clean(os.TempDir()) && d != "/"; d = filepath.Dir(d) { // let the unprivileged user reach it
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chmod(dir, perm); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	unreadable := func(dir string) string {
		if err := os.Chmod(filepath.Join(dir, marker.Filename), 0); err != nil {
			t.Fatal(err)
		}
		return dir
	}

	for _, tc := range []struct {
		name      string
		runner    Runner
		home      string
		op        string
		wantError string // "" when the call must succeed
		wantState calls.FileState
	}{
		{"unreadable marker: project", asUnprivileged(), unreadable(home(0o777, true)), "project", "cannot read", ""},
		{"unreadable marker: clear", asUnprivileged(), unreadable(home(0o777, true)), "clear", "cannot read", ""},
		{"unreadable marker: read", asUnprivileged(), unreadable(home(0o777, true)), "read", "", calls.FileUnreadable},
		{"read-only home: project", asUnprivileged(), home(0o755, false), "project", "cannot write", ""},
		{"read-only home: clear", asUnprivileged(), home(0o755, true), "clear", "cannot remove", ""},
		{"full disk: first project", onFullDisk, home(0o755, false), "project", "cannot write", ""},
		{"full disk: refresh", onFullDisk, home(0o755, true), "project", "cannot write", ""},
		{"full disk: clear", onFullDisk, home(0o755, true), "clear", "", calls.FileAbsent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := os.ReadFile(filepath.Join(tc.home, marker.Filename))
			p := NewProgram(tc.runner, proc)
			var obs calls.Observation
			var err error
			switch tc.op {
			case "project":
				obs, err = p.Project(ctx, calls.Pod{}, tc.home, request("uid-1", "me"))
			case "clear":
				obs, err = p.Clear(ctx, calls.Pod{}, tc.home, "uid-1")
			default:
				obs, err = p.Read(ctx, calls.Pod{}, tc.home)
			}
			switch {
			case tc.wantError != "":
				if err == nil || !strings.Contains(err.Error(), tc.wantError) || !strings.Contains(err.Error(), marker.Filename) {
					t.Fatalf("error %v (outcome %q), want one naming the marker that says %q", err, obs.Outcome, tc.wantError)
				}
				// A failed call leaves the marker as it was: nothing half written.
				if after, _ := os.ReadFile(filepath.Join(tc.home, marker.Filename)); string(after) != string(before) {
					t.Errorf("marker changed by a failed call: %q -> %q", before, after)
				}
			case err != nil:
				t.Fatal(err)
			case obs.Marker.State != tc.wantState:
				t.Errorf("marker read back as %q, want %q", obs.Marker.State, tc.wantState)
			}
			if left, _ := filepath.Glob(filepath.Join(tc.home, ".drain_request.json.?*")); len(left) != 0 {
				t.Errorf("partial files left: %v", left)
			}
		})
	}
}

// With no home named, the program acts on the container's own HERMES_HOME
// environment (exec inherits the image's ENV), else on /opt/data, and says
// which (item B6).
func TestAnEmptyHomeIsTheContainersOwn(t *testing.T) {
	p := NewProgram(LocalRunner{}, fakeProc(t, bootID, statLine("init", "42")))
	home := t.TempDir()
	t.Setenv("HERMES_HOME", home)
	obs, err := p.Project(context.Background(), calls.Pod{}, "", request("uid-1", "me"))
	if err != nil || obs.Outcome != calls.Written || obs.Home != home {
		t.Fatalf("project into the environment's home: %v %v %q", obs.Outcome, err, obs.Home)
	}
	if _, err := os.Stat(filepath.Join(home, marker.Filename)); err != nil {
		t.Errorf("no marker in the environment's home: %v", err)
	}
	t.Setenv("HERMES_HOME", "")
	if obs, _ := p.Read(context.Background(), calls.Pod{}, ""); obs.Home != "/opt/data" {
		t.Errorf("without the environment, home %q, want /opt/data", obs.Home)
	}
	t.Setenv("HERMES_HOME", "relative")
	if _, err := p.Read(context.Background(), calls.Pod{}, ""); err == nil || !strings.Contains(err.Error(), "not an absolute path") {
		t.Errorf("a relative environment home: %v", err)
	}
}

// recording runs the program locally and records its command line.
type recording struct{ argv []string }

func (r *recording) Run(ctx context.Context, pod calls.Pod, argv []string, stdin []byte) ([]byte, error) {
	r.argv = argv
	return LocalRunner{}.Run(ctx, pod, argv, stdin)
}

// Every user of the container reads a process's command line in
// /proc/PID/cmdline, the gateway's user included. So argv holds the shell,
// by its absolute path (not looked up in the container's PATH), the
// program and the operation only: the nonce that fences the report and
// names the private files, and the request's values, travel on stdin
// (items 2 and 12 of issue 23).
func TestArgvHoldsTheOperationOnly(t *testing.T) {
	proc := fakeProc(t, bootID, statLine("init", "42"))
	rec := &recording{}
	p := NewProgram(rec, proc)
	home := t.TempDir()
	req := request("uid-1", "me")
	req.Replaceable = []byte("a marker\nof two lines")
	if obs, err := p.Project(context.Background(), calls.Pod{}, home, req); err != nil || obs.Outcome != calls.Written {
		t.Fatalf("project: %v %v", obs.Outcome, err)
	}
	if want := []string{"/bin/sh", "-c", program, "hermes-drain", "project", home, proc}; !slices.Equal(rec.argv, want) {
		t.Errorf("argv %q, then the program, then %q; want %q, then the program, then %q", rec.argv[:2], rec.argv[3:], want[:2], want[3:])
	}
}
