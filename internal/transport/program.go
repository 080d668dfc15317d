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

// maxOutput bounds what a call may print: two files of at most 64 KiB
// (program.sh's maxFile) and a few lines. A runner aborts a call that
// prints more.
const maxOutput = 1 << 20

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
	return p.call(ctx, pod, "project", home, input{token: marker.OwnerToken(req.Marker.Origin.GatewayDrainUID), marker: rendered, replaceable: replaceable})
}

func (p *Program) Clear(ctx context.Context, pod calls.Pod, home string, ownerUID string) (calls.Observation, error) {
	return p.call(ctx, pod, "clear", home, input{token: marker.OwnerToken(ownerUID)})
}

func (p *Program) Read(ctx context.Context, pod calls.Pod, home string) (calls.Observation, error) {
	return p.call(ctx, pod, "read", home, input{})
}

// input is what program.sh reads on its stdin rather than in argv, which the
// gateway's user reads in /proc/PID/cmdline.
type input struct {
	token       string
	marker      marker.Rendered
	replaceable string
}

// stdin is the input as program.sh reads it: one value a line (the JSON
// texts hold no newline), then the replaceable marker as its number of
// lines and those lines.
func (in input) stdin(fence, nonce string) []byte {
	lines := []string{fence, nonce, in.token, in.marker.Head, in.marker.Mid, in.marker.Tail, "0"}
	if in.replaceable != "" {
		replaceable := strings.Split(in.replaceable, "\n")
		lines[6] = strconv.Itoa(len(replaceable))
		lines = append(lines, replaceable...)
	}
	return []byte(strings.Join(lines, "\n") + "\n")
}

func (p *Program) call(ctx context.Context, pod calls.Pod, op, home string, in input) (_ calls.Observation, err error) {
	result := "transport"
	defer countCall("exec", op, time.Now(), &result)

	// The fence is never written anywhere; the nonce names the private
	// files, which the gateway's user sees in its home while they exist.
	fence, nonce := calls.NewNonce(), calls.NewNonce()
	// /bin/sh by its path: the container's PATH may start with a directory
	// the gateway's user can write, and exec runs as root.
	argv := []string{"/bin/sh", "-c", program, "hermes-drain", op, home, p.procRoot}
	out, runErr := p.runner.Run(ctx, pod, argv, in.stdin(fence, nonce))
	obs, parseErr := parseOutput(out, fence)
	if parseErr != nil {
		if runErr != nil {
			return calls.Observation{}, readable(runErr, argv)
		}
		result = "output"
		return calls.Observation{}, parseErr
	}
	// A complete result stands even if the stream reported an error on close:
	// some exec paths lose the exit status and report a generic failure.
	if obs.Outcome == calls.Failed {
		result = "container"
		return obs.Observation, calls.ContainerError(obs.errMessage)
	}
	result = string(obs.Outcome)
	return obs.Observation, nil
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
	rest := out
	line := func() (string, bool) {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			return "", false
		}
		l := string(rest[:i])
		rest = rest[i+1:]
		return l, true
	}
	unexpected := func(what string) error {
		return fmt.Errorf("unexpected output from the container (%s): %q", what, marker.Shorten(string(out), 200))
	}

	if l, ok := line(); !ok || l != "hermes-drain/2 "+fence {
		return r, unexpected("no header; is /bin/sh missing in the container?")
	}
	l, ok := line()
	if e, found := strings.CutPrefix(l, "epoch "); ok && found {
		r.Epoch = e
	} else {
		return r, unexpected("no epoch")
	}
	l, ok = line()
	if h, found := strings.CutPrefix(l, "home "); ok && found {
		r.Home = h
	} else {
		return r, unexpected("no home")
	}
	l, ok = line()
	res, found := strings.CutPrefix(l, "result ")
	if !ok || !found {
		return r, unexpected("no result")
	}
	word, msg, _ := strings.Cut(res, " ")
	r.Outcome, r.errMessage = calls.Outcome(word), msg

	fenceLine := []byte("\n--" + fence + "-- ")
	for _, f := range []struct {
		name string
		into *calls.File
	}{{"marker", &r.Marker}, {"state", &r.GatewayState}} {
		l, ok := line()
		state, found := strings.CutPrefix(l, "file "+f.name+" ")
		if !ok || !found {
			return r, unexpected("no " + f.name + " file")
		}
		f.into.State = calls.FileState(state)
		switch f.into.State {
		case calls.FilePresent:
			i := bytes.Index(rest, fenceLine)
			if i < 0 {
				return r, unexpected("unterminated " + f.name + " file")
			}
			data := rest[:i]
			rest = rest[i+len(fenceLine):]
			switch l, _ := line(); l {
			case "ok":
				f.into.Data = bytes.Clone(data)
			case "unreadable": // failed part way: what came is not the file
				f.into.State = calls.FileUnreadable
			default:
				return r, unexpected("unterminated " + f.name + " file")
			}
		case calls.FileAbsent, calls.FileDirectory, calls.FileIrregular, calls.FileUnreadable:
		default:
			return r, unexpected("file state " + state)
		}
	}
	l, ok = line()
	proc, found := strings.CutPrefix(l, "proc ")
	if !ok || !found {
		return r, unexpected("no proc line")
	}
	if pid, stat, _ := strings.Cut(proc, " "); pid != "-" {
		// A PID too large to be one (a hostile state file's) names no process.
		if n, err := strconv.ParseInt(pid, 10, 64); err == nil {
			r.GatewayProcess = calls.Process{PID: n, Stat: stat}
		}
	}
	if l, ok := line(); !ok || l != "end "+fence {
		return r, unexpected("no end")
	}
	return r, nil
}
