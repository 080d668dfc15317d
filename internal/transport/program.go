package transport

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hermes-agent/hermes-drain-operator/internal/calls"
	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
)

//go:embed program.sh
var program string

// maxOutput bounds what a call may print: the root home's two files of at
// most 64 KiB (program.sh's maxFile), up to 32 profile homes' of 16 KiB, a
// gateway.pid of 4 KiB in each, and a few lines: 1.3 MiB. A runner aborts a
// call that prints more.
const maxOutput = 2 << 20

// Program implements Transport by running program.sh through a Runner.
type Program struct {
	runner   Runner
	procRoot string
}

var _ Transport = (*Program)(nil)

// NewProgram returns a Transport that runs program.sh through runner. The
// epoch is computed from procRoot, which is "/proc" everywhere but in tests.
func NewProgram(runner Runner, procRoot string) *Program {
	return &Program{runner: runner, procRoot: procRoot}
}

func (p *Program) Project(ctx context.Context, pod calls.Pod, home string, req calls.ProjectRequest) (calls.Observation, error) {
	rendered, err := marker.Render(req.Marker)
	if err != nil {
		return calls.Observation{}, err
	}
	// The program compares with $(cat file), which drops trailing newlines.
	replaceable := strings.TrimRight(string(req.Replaceable), "\n")
	if err := req.CheckProfiles(); err != nil {
		return calls.Observation{}, err
	}
	return p.call(ctx, pod, calls.OpProject, home, input{token: marker.OwnerToken(req.Marker.Origin.GatewayDrainUID), marker: rendered, replaceable: replaceable, profiles: req.Profiles})
}

func (p *Program) Clear(ctx context.Context, pod calls.Pod, home string, ownerUID string) (calls.Observation, error) {
	return p.call(ctx, pod, calls.OpClear, home, input{token: marker.OwnerToken(ownerUID)})
}

func (p *Program) Read(ctx context.Context, pod calls.Pod, home string) (calls.Observation, error) {
	return p.call(ctx, pod, calls.OpRead, home, input{})
}

// input is what program.sh reads on its stdin rather than in argv, which the
// gateway's user reads in /proc/PID/cmdline.
type input struct {
	token       string
	marker      marker.Rendered
	replaceable string
	profiles    []string
}

// stdin is the input as program.sh reads it: one value a line (the JSON
// texts hold no newline), then the replaceable marker as its number of
// lines and those lines.
func (in input) stdin(fence, nonce string) []byte {
	lines := []string{fence, nonce, in.token, in.marker.Head, in.marker.Mid, in.marker.Tail, strings.Join(in.profiles, " "), "0"}
	if in.replaceable != "" {
		replaceable := strings.Split(in.replaceable, "\n")
		lines[7] = strconv.Itoa(len(replaceable))
		lines = append(lines, replaceable...)
	}
	return []byte(strings.Join(lines, "\n") + "\n")
}

func (p *Program) call(ctx context.Context, pod calls.Pod, op calls.Op, home string, in input) (obs calls.Observation, err error) {
	defer countCall("exec", op, time.Now(), &obs, &err)

	// The fence is never written anywhere; the nonce names the private
	// files, which the gateway's user sees in its home while they exist.
	fence, nonce := calls.NewNonce(), calls.NewNonce()
	// /bin/sh by its path: the container's PATH may start with a directory
	// the gateway's user can write, and exec runs as root.
	argv := []string{"/bin/sh", "-c", program, "hermes-drain", string(op), home, p.procRoot}
	out, runErr := p.runner.Run(ctx, pod, argv, in.stdin(fence, nonce))
	report, parseErr := parseOutput(out, fence)
	if parseErr != nil {
		if runErr != nil {
			return calls.Observation{}, calls.Failure(calls.Unreachable, readable(runErr, argv))
		}
		return calls.Observation{}, calls.Failure(calls.BadOutput, parseErr)
	}
	// A complete result stands even if the stream reported an error on close:
	// some exec paths lose the exit status and report a generic failure.
	if report.Outcome == calls.Failed {
		return report.Observation, calls.ContainerError(report.errMessage)
	}
	return report.Observation, nil
}

// maxErrorLength bounds an error message kept in status.
const maxErrorLength = 512

// readable shortens a runner's error for status: some runtimes echo the
// whole command line (the program text and the marker) back in their error.
func readable(err error, argv []string) error {
	msg := strings.Replace(err.Error(), strings.Join(argv[2:], " "), "<hermes-drain "+argv[4]+">", 1)
	return errors.New(marker.Elide(msg, maxErrorLength))
}

type parsed struct {
	calls.Observation
	errMessage string
}

// parseOutput reads program.sh's report. Files are fenced by a nonce no one
// else has seen, so their bytes can hold anything.
func parseOutput(out []byte, fence string) (parsed, error) {
	var r parsed
	if len(out) > maxOutput {
		return r, fmt.Errorf("the container printed more than the %d bytes expected: the call was aborted", maxOutput)
	}
	p := &output{all: out, rest: out, fence: fence}
	if l, ok := p.line(); !ok || l != "hermes-drain/3 "+fence {
		return r, p.unexpected("no header; is /bin/sh missing in the container?")
	}
	var ok bool
	if r.Epoch, ok = p.field("epoch "); !ok {
		return r, p.unexpected("no epoch")
	}
	if r.Home, ok = p.field("home "); !ok {
		return r, p.unexpected("no home")
	}
	var err error
	if r.GatewayHome, r.errMessage, err = p.home(); err != nil {
		return r, err
	}
	count, ok := p.field("profiles ")
	if !ok {
		return r, p.unexpected("no profile count")
	}
	if r.ProfileCount, err = strconv.Atoi(count); err != nil || r.ProfileCount < 0 {
		return r, p.unexpected("profile count " + count)
	}
	for range min(r.ProfileCount, calls.MaxProfiles) {
		prof := calls.Profile{}
		if prof.Name, ok = p.field("profile "); !ok || !calls.ProfileName(prof.Name) {
			return r, p.unexpected("no profile")
		}
		if prof.GatewayHome, prof.Message, err = p.home(); err != nil {
			return r, err
		}
		r.Profiles = append(r.Profiles, prof)
	}
	if l, ok := p.line(); !ok || l != "end "+fence {
		return r, p.unexpected("no end")
	}
	return r, nil
}

// output is program.sh's report, read line by line.
type output struct {
	all, rest []byte
	fence     string
}

func (p *output) line() (string, bool) {
	i := bytes.IndexByte(p.rest, '\n')
	if i < 0 {
		return "", false
	}
	l := string(p.rest[:i])
	p.rest = p.rest[i+1:]
	return l, true
}

// field reads a line that starts with prefix, and returns the rest of it.
func (p *output) field(prefix string) (string, bool) {
	l, ok := p.line()
	if !ok {
		return "", false
	}
	return strings.CutPrefix(l, prefix)
}

func (p *output) unexpected(what string) error {
	return fmt.Errorf("unexpected output from the container (%s): %q", what, marker.Shorten(string(p.all), 200))
}

// home reads one home's report: its result (and the message of an error),
// its files and the processes they name.
func (p *output) home() (calls.GatewayHome, string, error) {
	var h calls.GatewayHome
	res, ok := p.field("result ")
	if !ok {
		return h, "", p.unexpected("no result")
	}
	word, msg, _ := strings.Cut(res, " ")
	h.Outcome = calls.Outcome(word)
	for _, f := range []struct {
		name string
		into *calls.File
		proc *calls.Process
	}{{"marker", &h.Marker, nil}, {"state", &h.GatewayState, &h.GatewayProcess}, {"pid", &h.PIDFile, &h.PIDProcess}} {
		if err := p.file(f.name, f.into); err != nil {
			return h, "", err
		}
		if f.proc == nil {
			continue
		}
		proc, ok := p.field("proc ")
		if !ok {
			return h, "", p.unexpected("no proc line")
		}
		if pid, stat, _ := strings.Cut(proc, " "); pid != "-" {
			// A PID too large to be one (a hostile record's) names no process.
			if n, err := strconv.ParseInt(pid, 10, 64); err == nil {
				*f.proc = calls.Process{PID: n, Stat: stat}
			}
		}
	}
	return h, msg, nil
}

// file reads one file's report.
func (p *output) file(name string, into *calls.File) error {
	state, ok := p.field("file " + name + " ")
	if !ok {
		return p.unexpected("no " + name + " file")
	}
	into.State = calls.FileState(state)
	switch into.State {
	case calls.FilePresent:
		fenceLine := []byte("\n--" + p.fence + "-- ")
		i := bytes.Index(p.rest, fenceLine)
		if i < 0 {
			return p.unexpected("unterminated " + name + " file")
		}
		data := p.rest[:i]
		p.rest = p.rest[i+len(fenceLine):]
		switch l, _ := p.line(); l {
		case "ok":
			into.Data = bytes.Clone(data)
		case "unreadable": // failed part way: what came is not the file
			into.State = calls.FileUnreadable
		default:
			return p.unexpected("unterminated " + name + " file")
		}
	case calls.FileAbsent, calls.FileDirectory, calls.FileIrregular, calls.FileUnreadable:
	default:
		return p.unexpected("file state " + state)
	}
	return nil
}
