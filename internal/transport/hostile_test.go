package transport

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hermes-agent/hermes-drain-operator/internal/calls"
	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
)

// HERMES_HOME belongs to the gateway's user (uid 10000 upstream), while exec
// runs the program as root: everything in it may have been planted. These
// tests plant what such a user can, under every shell the program must run
// on.

// shells are the shells the program must run under: the host's sh (dash on
// Debian) and busybox ash (busybox-based images; `make test` installs it).
func shells(t *testing.T) map[string]LocalRunner {
	t.Helper()
	if _, err := exec.LookPath("busybox"); err != nil {
		t.Fatalf("busybox is needed to test the program under ash (Debian package busybox-static; make test installs it): %v", err)
	}
	return map[string]LocalRunner{"dash": {Shell: []string{"dash"}}, "busybox ash": {Shell: []string{"busybox", "sh"}}}
}

// planting runs the program after planting a symbolic link to target at
// every name of HERMES_HOME it could write through: the names derived from
// its nonce (which it reads on the program's stdin), and $$, which a
// program could be tempted to name files by (the planting shell execs the
// program, which keeps its PID).
type planting struct {
	LocalRunner
	target string
}

func (p planting) Run(ctx context.Context, pod calls.Pod, argv []string, stdin []byte) ([]byte, error) {
	home, nonce := argv[5], strings.Split(string(stdin), "\n")[1]
	plant := `for n in tmp.$$ "$2.new" "$2.old"; do ln -s "$3" "$1/.drain_request.json.$n"; done; shift 3; exec "$@"`
	return LocalRunner{}.Run(ctx, pod, append([]string{"/bin/sh", "-c", plant, "plant", home, nonce, p.target}, p.command(argv)...), stdin)
}

// A link planted where the program creates its files is never written
// through, nor renamed over the marker (item A1).
func TestPlantedLinksAreNeverWrittenThrough(t *testing.T) {
	for name, sh := range shells(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			proc := fakeProc(t, bootID, statLine("init", "42"))
			precious := filepath.Join(t.TempDir(), "precious")
			if err := os.WriteFile(precious, []byte("root's secret"), 0o600); err != nil {
				t.Fatal(err)
			}
			home := t.TempDir()
			_, err := NewProgram(planting{sh, precious}, proc).Project(ctx, calls.Pod{}, home, request("uid-1", "me"))
			if err == nil || !strings.Contains(err.Error(), "cannot write") {
				t.Errorf("project through planted links: %v, want a clear error", err)
			}
			if b, _ := os.ReadFile(precious); string(b) != "root's secret" {
				t.Errorf("the file a planted link points to was overwritten: %q", b)
			}
			if _, err := os.Lstat(filepath.Join(home, marker.Filename)); !os.IsNotExist(err) {
				t.Errorf("a marker appeared (%v): it can only be a planted link", err)
			}
			// With nothing planted the same home works at once.
			if obs, err := NewProgram(sh, proc).Project(ctx, calls.Pod{}, home, request("uid-1", "me")); err != nil || obs.Outcome != calls.Written {
				t.Errorf("project afterwards: %v %v", obs.Outcome, err)
			}
		})
	}
}

// Only regular files that are not links are read: a FIFO does not block the
// call, /dev/zero does not stream, a link to a root-only file is not copied
// into the report, and a huge file is read only in part (item A2).
func TestOnlyRegularFilesAreRead(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "shadow")
	if err := os.WriteFile(secret, []byte("root:s3cret"), 0o600); err != nil {
		t.Fatal(err)
	}
	plant := map[string]func(path string) error{
		"a FIFO":                     func(p string) error { return syscall.Mkfifo(p, 0o644) },
		"a link to /dev/zero":        func(p string) error { return os.Symlink("/dev/zero", p) },
		"a link to a root-only file": func(p string) error { return os.Symlink(secret, p) },
		"a link to a FIFO": func(p string) error {
			fifo := p + ".fifo"
			if err := syscall.Mkfifo(fifo, 0o644); err != nil {
				return err
			}
			return os.Symlink(fifo, p)
		},
	}
	for shell, sh := range shells(t) {
		p := NewProgram(sh, fakeProc(t, bootID, statLine("init", "42")))
		for what, mk := range plant {
			for _, file := range []string{marker.Filename, marker.StateFilename} {
				t.Run(shell+"/"+file+" is "+what, func(t *testing.T) {
					home := t.TempDir()
					if err := mk(filepath.Join(home, file)); err != nil {
						t.Fatal(err)
					}
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					obs, err := p.Read(ctx, calls.Pod{}, home)
					if err != nil {
						t.Fatalf("read: %v", err)
					}
					got := obs.Marker
					if file == marker.StateFilename {
						got = obs.GatewayState
					}
					if got.State != calls.FileIrregular || got.Data != nil {
						t.Errorf("read back as %s %q, want irregular and unread", got.State, got.Data)
					}
					for op, call := range map[string]func() (calls.Observation, error){
						"project": func() (calls.Observation, error) { return p.Project(ctx, calls.Pod{}, home, request("uid-1", "me")) },
						"clear":   func() (calls.Observation, error) { return p.Clear(ctx, calls.Pod{}, home, "uid-1") },
					} {
						_, err := call()
						if file == marker.Filename && (err == nil || !strings.Contains(err.Error(), "not a regular file")) {
							t.Errorf("%s: %v, want a refusal naming the marker", op, err)
						}
						if file == marker.StateFilename && err != nil {
							t.Errorf("%s: %v", op, err)
						}
					}
				})
			}
		}
		t.Run(shell+"/a huge marker is read in part", func(t *testing.T) {
			home := t.TempDir()
			huge := strings.Repeat("x", 8<<20)
			if err := os.WriteFile(filepath.Join(home, marker.Filename), []byte(huge), 0o644); err != nil {
				t.Fatal(err)
			}
			obs, err := p.Read(context.Background(), calls.Pod{}, home)
			if err != nil || obs.Marker.State != calls.FilePresent || len(obs.Marker.Data) != 64<<10 {
				t.Errorf("read: %v %s %d bytes, want the first 64 KiB", err, obs.Marker.State, len(obs.Marker.Data))
			}
			if obs, err := p.Project(context.Background(), calls.Pod{}, home, request("uid-1", "me")); err != nil || obs.Outcome != calls.Foreign {
				t.Errorf("project over a huge foreign marker: %v %v, want it left alone", obs.Outcome, err)
			}
		})
	}
}

// A call that prints more than a report can hold is stopped at once, not
// read to the end or to its timeout (item A2).
func TestRunawayOutputIsAbortedAtOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	out, err := LocalRunner{}.Run(ctx, calls.Pod{}, []string{"yes", strings.Repeat("y", 100)}, nil)
	if err == nil || len(out) > maxOutput+1 {
		t.Fatalf("runaway output: %d bytes, %v", len(out), err)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("aborted only after %s", took)
	}
	if _, err := parseOutput(out, "N"); err == nil || !strings.Contains(err.Error(), "aborted") {
		t.Errorf("parser on a capped output: %v", err)
	}
}

// interposing runs the program (under dash, whose PATH lookups it can
// intercept) with shims of ln, mv, rm and sync that log each call and, on
// the first call of a command in `plantOn`, first write a foreign marker:
// another writer acting between the program's read and its write. The
// program sets its own PATH, so the shims' directory is put first in it.
type interposing struct {
	dir     string
	plantOn string
	foreign string
}

func newInterposing(t *testing.T, plantOn, foreign string) interposing {
	dir := t.TempDir()
	for _, cmd := range []string{"ln", "mv", "rm", "sync"} {
		shim := fmt.Sprintf(`#!/bin/sh
echo "%[1]s $*" >> "$SHIM_LOG"
case " $PLANT_ON " in *" %[1]s "*)
	if [ ! -e "$SHIM_LOG.planted" ]; then
		: > "$SHIM_LOG.planted"
		printf '%%s' "$PLANT_TEXT" > "$PLANT_HOME/planting" && %[2]s -f "$PLANT_HOME/planting" "$PLANT_HOME/.drain_request.json"
	fi
esac
exec %[3]s "$@"
`, cmd, mustLookPath(t, "mv"), mustLookPath(t, cmd))
		if err := os.WriteFile(filepath.Join(dir, cmd), []byte(shim), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return interposing{dir: dir, plantOn: plantOn, foreign: foreign}
}

func mustLookPath(t *testing.T, cmd string) string {
	p, err := exec.LookPath(cmd)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (s interposing) log() string { return filepath.Join(s.dir, "log") }

func (s interposing) Run(ctx context.Context, pod calls.Pod, argv []string, stdin []byte) ([]byte, error) {
	const path = "\nPATH=/usr/sbin:/usr/bin:/sbin:/bin\n"
	if !strings.Contains(argv[2], path) {
		return nil, errors.New("the program does not set PATH: the shims cannot be put first")
	}
	argv = slices.Clone(argv)
	argv[2] = strings.Replace(argv[2], path, "\nPATH="+s.dir+":"+path[len("\nPATH="):], 1)
	env := []string{"env", "SHIM_LOG=" + s.log(), "PLANT_ON=" + s.plantOn, "PLANT_TEXT=" + s.foreign, "PLANT_HOME=" + argv[5], "dash"}
	return LocalRunner{}.Run(ctx, pod, append(env, argv[1:]...), stdin)
}

const dashboardMarker = `{"action": "drain", "requested_at": "2026-11-23T08:00:00.000000+00:00", "principal": "dashboard", "epoch": ""}`

// A marker another writer puts in place between the program's read and its
// write is never destroyed: creating fails if one appeared, and a clear
// puts back what it took if it was not ours (item A3).
func TestAMarkerWrittenMeanwhileIsNeverDestroyed(t *testing.T) {
	ctx := context.Background()
	proc := fakeProc(t, bootID, statLine("init", "42"))
	t.Run("project into an empty home", func(t *testing.T) {
		home := t.TempDir()
		shims := newInterposing(t, "ln mv", dashboardMarker)
		obs, err := NewProgram(shims, proc).Project(ctx, calls.Pod{}, home, request("uid-1", "me"))
		if err != nil || obs.Outcome != calls.Foreign {
			t.Errorf("project: %v %v, want foreign", obs.Outcome, err)
		}
		if b, _ := os.ReadFile(filepath.Join(home, marker.Filename)); string(b) != dashboardMarker {
			t.Errorf("the dashboard's marker was replaced by %q", b)
		}
	})
	t.Run("clear of our marker", func(t *testing.T) {
		home := t.TempDir()
		if obs, err := NewProgram(LocalRunner{}, proc).Project(ctx, calls.Pod{}, home, request("uid-1", "me")); err != nil || obs.Outcome != calls.Written {
			t.Fatalf("setup: %v %v", obs.Outcome, err)
		}
		shims := newInterposing(t, "mv rm", dashboardMarker)
		obs, err := NewProgram(shims, proc).Clear(ctx, calls.Pod{}, home, "uid-1")
		if err != nil || obs.Outcome != calls.Foreign {
			t.Errorf("clear: %v %v, want foreign", obs.Outcome, err)
		}
		if b, _ := os.ReadFile(filepath.Join(home, marker.Filename)); string(b) != dashboardMarker {
			t.Errorf("the dashboard's marker was removed (now %q)", b)
		}
		if left, _ := filepath.Glob(filepath.Join(home, ".drain_request.json.?*")); len(left) != 0 {
			t.Errorf("files left behind: %v", left)
		}
	})
}

// The new marker is flushed to disk before it is linked or renamed into
// place, so a crash leaves it whole or absent, never empty (item A4).
func TestTheMarkerIsFlushedBeforeItIsPutInPlace(t *testing.T) {
	ctx := context.Background()
	proc := fakeProc(t, bootID, statLine("init", "42"))
	home := t.TempDir()
	shims := newInterposing(t, "", "")
	p := NewProgram(shims, proc)
	for _, want := range []calls.Outcome{calls.Written, calls.Refreshed} {
		if obs, err := p.Project(ctx, calls.Pod{}, home, request("uid-1", "me")); err != nil || obs.Outcome != want {
			t.Fatalf("project: %v %v, want %s", obs.Outcome, err, want)
		}
	}
	log, _ := os.ReadFile(shims.log())
	var synced []string
	placed := 0
	for _, l := range strings.Split(strings.TrimSpace(string(log)), "\n") {
		cmd, args, _ := strings.Cut(l, " ")
		file := strings.Fields(args)
		switch cmd {
		case "sync":
			synced = append(synced, file[len(file)-1])
		case "ln", "mv":
			placed++
			src := file[len(file)-2]
			if len(synced) == 0 || synced[len(synced)-1] != src {
				t.Errorf("%s placed %s without flushing it first (log:\n%s)", cmd, src, log)
			}
		}
	}
	if placed != 2 {
		t.Errorf("%d files placed, want 2 (log:\n%s)", placed, log)
	}
}

// In the upstream image exec runs as root and HERMES_HOME belongs to uid
// 10000: the marker root writes is readable by the gateway, and the gateway's
// user (the dashboard's cancel) can still remove or replace it (item A5).
func TestTheGatewaysUserKeepsControlOfItsHome(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to act as root and as uid 10000")
	}
	const hermes = 10000
	for name, sh := range shells(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			p := NewProgram(sh, fakeProc(t, bootID, statLine("init", "42")))
			home := filepath.Join(t.TempDir(), "data")
			if err := os.Mkdir(home, 0o755); err != nil {
				t.Fatal(err)
			}
			for d := home; d != "/"; d = filepath.Dir(d) { // uid 10000 must reach it
				if err := os.Chmod(d, 0o755); err != nil && d == home {
					t.Fatal(err)
				}
			}
			if err := os.Chown(home, hermes, hermes); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(home, marker.Filename)
			asHermes := func(script string) {
				t.Helper()
				cmd := exec.Command("sh", "-c", script, "sh", path)
				cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: hermes, Gid: hermes}}
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("as uid %d: %s: %v: %s", hermes, script, err, out)
				}
			}

			if obs, err := p.Project(ctx, calls.Pod{}, home, request("uid-1", "me")); err != nil || obs.Outcome != calls.Written {
				t.Fatalf("project: %v %v", obs.Outcome, err)
			}
			if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
				t.Fatalf("marker %v %v, want mode 0644", fi, err)
			}
			asHermes(`cat "$1" > /dev/null`) // the gateway reads it
			asHermes(`rm "$1"`)              // the dashboard cancels
			if obs, err := p.Read(ctx, calls.Pod{}, home); err != nil || obs.Marker.State != calls.FileAbsent {
				t.Fatalf("after the dashboard's cancel: %v %v", obs.Marker.State, err)
			}
			if obs, err := p.Project(ctx, calls.Pod{}, home, request("uid-1", "me")); err != nil || obs.Outcome != calls.Written {
				t.Fatalf("project again: %v %v", obs.Outcome, err)
			}
			// The dashboard replaces it atomically with its own.
			asHermes(`printf '%s' '` + dashboardMarker + `' > "$1.tmp.$$" && mv -f "$1.tmp.$$" "$1"`)
			if obs, err := p.Clear(ctx, calls.Pod{}, home, "uid-1"); err != nil || obs.Outcome != calls.Foreign {
				t.Fatalf("clear after the dashboard's write: %v %v", obs.Outcome, err)
			}
			if b, _ := os.ReadFile(path); string(b) != dashboardMarker {
				t.Errorf("the dashboard's marker became %q", b)
			}
		})
	}
}

// The report names the state file's writer as the container's /proc shows
// it, so that a file a dead gateway left is told from a live one (item 9).
func TestTheStateFilesWriterIsLookedUp(t *testing.T) {
	self, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Skip("no /proc")
	}
	start, err := marker.ProcStatStartTime(string(self))
	if err != nil {
		t.Fatal(err)
	}
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	for shell, sh := range shells(t) {
		p := NewProgram(sh, "/proc")
		for name, tc := range map[string]struct {
			pid   int
			start string
			gone  bool
		}{
			"alive":      {os.Getpid(), start, false},
			"exited":     {dead.Process.Pid, "1", true},
			"PID reused": {os.Getpid(), start + "1", true},
		} {
			t.Run(shell+"/"+name, func(t *testing.T) {
				home := t.TempDir()
				state := fmt.Sprintf(`{"gateway_state": "draining", "active_agents": 0, "pid": %d, "start_time": %s}`, tc.pid, tc.start)
				if err := os.WriteFile(filepath.Join(home, marker.StateFilename), []byte(state), 0o644); err != nil {
					t.Fatal(err)
				}
				obs, err := p.Read(context.Background(), calls.Pod{}, home)
				if err != nil || obs.GatewayProcess.PID != int64(tc.pid) {
					t.Fatalf("read: %+v %v", obs.GatewayProcess, err)
				}
				_, problem := obs.GatewayStateNow()
				if gone := problem != nil && problem.Reason == calls.ReasonGatewayGone; gone != tc.gone {
					t.Errorf("pid %s start %s: problem %+v, want gone %v", strconv.Itoa(tc.pid), tc.start, problem, tc.gone)
				}
			})
		}
	}
}

// pathPlanting runs the program the way exec runs it in the upstream image:
// its PATH starts with a directory the gateway's user can write (there
// /opt/data/.local/bin). That directory holds an executable under every
// command name this host has, and sh; each one records its name and runs the
// real command. The container's /bin/sh is the given shell.
type pathPlanting struct {
	sh  LocalRunner // its Shell by an absolute path
	dir string
}

func newPathPlanting(t *testing.T, shell []string) pathPlanting {
	t.Helper()
	p := pathPlanting{sh: LocalRunner{Shell: slices.Clone(shell)}, dir: t.TempDir()}
	p.sh.Shell[0] = mustLookPath(t, shell[0])
	for _, bin := range []string{"/usr/sbin", "/usr/bin", "/sbin", "/bin"} {
		entries, _ := os.ReadDir(bin)
		for _, e := range entries {
			shim := filepath.Join(p.dir, e.Name())
			if _, err := os.Lstat(shim); err == nil {
				continue // the first on a system PATH is the real one
			}
			script := "#!/bin/sh\necho '" + e.Name() + "' >> \"$PLANTED_LOG\"\nexec '" + filepath.Join(bin, e.Name()) + "' \"$@\"\n"
			if strings.Contains(e.Name(), "'") {
				continue
			}
			if err := os.WriteFile(shim, []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(p.dir, "sh")); err != nil {
		t.Fatalf("no sh planted: %v", err)
	}
	return p
}

func (p pathPlanting) log() string { return filepath.Join(p.dir, "ran") }

func (p pathPlanting) Run(ctx context.Context, pod calls.Pod, argv []string, stdin []byte) ([]byte, error) {
	// env looks argv[0] up in the PATH it sets, as a container runtime does.
	env := []string{"env", "PATH=" + p.dir + ":" + os.Getenv("PATH"), "PLANTED_LOG=" + p.log()}
	return LocalRunner{}.Run(ctx, pod, append(env, p.sh.command(argv)...), stdin)
}

// exec runs the program as root in the gateway's container, whose PATH
// starts with a directory the gateway's user can write: nothing found there
// runs, whatever its name (item 2 of issue 23).
func TestNoCommandIsTakenFromThePath(t *testing.T) {
	for name, sh := range shells(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			planted := newPathPlanting(t, sh.Shell)
			p := NewProgram(planted, fakeProc(t, bootID, statLine("init", "42")))
			home := t.TempDir()
			if obs, err := p.Read(ctx, calls.Pod{}, home); err != nil || obs.Outcome != calls.Read {
				t.Errorf("read: %v %v", obs.Outcome, err)
			}
			if obs, err := p.Project(ctx, calls.Pod{}, home, request("uid-1", "me")); err != nil || obs.Outcome != calls.Written {
				t.Errorf("project: %v %v", obs.Outcome, err)
			}
			if obs, err := p.Clear(ctx, calls.Pod{}, home, "uid-1"); err != nil || obs.Outcome != calls.Cleared {
				t.Errorf("clear: %v %v", obs.Outcome, err)
			}
			if ran, err := os.ReadFile(planted.log()); err == nil {
				t.Errorf("commands planted on PATH ran: %s", strings.Join(strings.Fields(string(ran)), " "))
			}
		})
	}
}

// A HERMES_HOME is refused, by every implementation and for every call, when
// someone other than root (or the user the call runs as) could swap it or a
// directory above it for a link to elsewhere: exec runs as root, and the
// gateway's user would choose where root writes (item 12 of issue 23).
func TestAHomeOthersCouldMoveIsRefused(t *testing.T) {
	const other = 10000
	type layout struct {
		dirs  map[string]os.FileMode // made in order of their names' length
		owned []string               // given to uid 10000 (needs root)
		links map[string]string
		home  string
		want  string // the error; "" when the home is accepted
	}
	layouts := map[string]layout{
		"below a world-writable directory": {dirs: map[string]os.FileMode{"open": 0o777, "open/data": 0o755}, home: "open/data", want: "BASE/open lets a user other than root replace BASE/open/data"},
		"below a group-writable directory": {dirs: map[string]os.FileMode{"team": 0o775, "team/data": 0o755}, home: "team/data", want: "BASE/team lets a user other than root replace BASE/team/data"},
		"below a link":                     {dirs: map[string]os.FileMode{"real": 0o755, "real/data": 0o755}, links: map[string]string{"link": "real"}, home: "link/data", want: "BASE/link is a symbolic link"},
		"a link":                           {dirs: map[string]os.FileMode{"real": 0o755}, links: map[string]string{"link": "real"}, home: "link", want: "BASE/link is a symbolic link"},
		"below a sticky directory, ours":   {dirs: map[string]os.FileMode{"tmp": 0o777 | os.ModeSticky, "tmp/data": 0o755}, home: "tmp/data"},
		"below directories of ours":        {dirs: map[string]os.FileMode{"a": 0o755, "a/b": 0o700, "a/b/data": 0o777}, home: "a/b/data"},
	}
	if os.Geteuid() == 0 {
		layouts["below another user's directory"] = layout{dirs: map[string]os.FileMode{"theirs": 0o755, "theirs/data": 0o755}, owned: []string{"theirs"}, home: "theirs/data", want: "BASE/theirs lets a user other than root replace BASE/theirs/data"}
		layouts["below a sticky directory, theirs"] = layout{dirs: map[string]os.FileMode{"tmp": 0o777 | os.ModeSticky, "tmp/data": 0o755}, owned: []string{"tmp/data"}, home: "tmp/data", want: "BASE/tmp lets a user other than root replace BASE/tmp/data"}
		layouts["the gateway's own home"] = layout{dirs: map[string]os.FileMode{"opt": 0o755, "opt/data": 0o755}, owned: []string{"opt/data"}, home: "opt/data"}
	}
	proc := fakeProc(t, bootID, statLine("init", "42"))
	for impl, tr := range implementations(t, proc) {
		for name, l := range layouts {
			t.Run(impl+"/"+name, func(t *testing.T) {
				base := t.TempDir()
				names := slices.Collect(maps.Keys(l.dirs))
				slices.SortFunc(names, func(a, b string) int { return len(a) - len(b) })
				for _, d := range names {
					if err := os.Mkdir(filepath.Join(base, d), 0o700); err != nil {
						t.Fatal(err)
					}
					if err := os.Chmod(filepath.Join(base, d), l.dirs[d]); err != nil {
						t.Fatal(err)
					}
				}
				for _, d := range l.owned {
					if err := os.Chown(filepath.Join(base, d), other, other); err != nil {
						t.Fatal(err)
					}
				}
				for link, target := range l.links {
					if err := os.Symlink(target, filepath.Join(base, link)); err != nil {
						t.Fatal(err)
					}
				}
				home := filepath.Join(base, l.home)
				ctx := context.Background()
				for op, call := range map[string]func() (calls.Observation, error){
					"read":    func() (calls.Observation, error) { return tr.Read(ctx, calls.Pod{}, home) },
					"project": func() (calls.Observation, error) { return tr.Project(ctx, calls.Pod{}, home, request("uid-1", "me")) },
					"clear":   func() (calls.Observation, error) { return tr.Clear(ctx, calls.Pod{}, home, "uid-1") },
				} {
					obs, err := call()
					if l.want == "" {
						if err != nil {
							t.Errorf("%s: %v", op, err)
						}
						continue
					}
					want := calls.ContainerError("HERMES_HOME " + home + ": " + strings.ReplaceAll(l.want, "BASE", base) + ": refusing it")
					if err == nil || err.Error() != want.Error() || obs.Outcome != calls.Failed || obs.Marker.State != calls.FileAbsent {
						t.Errorf("%s: %v %v, want %q and nothing looked at", op, obs.Outcome, err, want)
					}
				}
				if l.want != "" {
					if _, err := os.Lstat(filepath.Join(base, "real", marker.Filename)); err == nil {
						t.Errorf("a marker was written where the link led")
					}
					if _, err := os.Lstat(filepath.Join(base, l.home, marker.Filename)); err == nil {
						t.Errorf("a marker was written in the refused home")
					}
				}
			})
		}
	}
}
