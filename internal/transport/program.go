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
	prefix, suffix, err := marker.Render(req.Marker)
	if err != nil {
		return calls.Observation{}, err
	}
	// The program compares with $(cat file), which drops trailing newlines.
	replaceable := strings.TrimRight(string(req.Replaceable), "\n")
	return p.call(ctx, pod, "project", home, marker.OwnerToken(req.Marker.Origin.GatewayDrainUID), replaceable, prefix, suffix)
}

func (p *Program) Clear(ctx context.Context, pod calls.Pod, home string, ownerUID string) (calls.Observation, error) {
	return p.call(ctx, pod, "clear", home, marker.OwnerToken(ownerUID))
}

func (p *Program) Read(ctx context.Context, pod calls.Pod, home string) (calls.Observation, error) {
	return p.call(ctx, pod, "read", home)
}

func (p *Program) call(ctx context.Context, pod calls.Pod, op, home string, args ...string) (_ calls.Observation, err error) {
	result := "transport"
	defer countCall("exec", op, time.Now(), &result)

	nonce := calls.NewNonce()
	argv := append([]string{"sh", "-c", program, "hermes-drain", op, home, p.procRoot, nonce}, args...)
	out, runErr := p.runner.Run(ctx, pod, argv)
	obs, parseErr := parseOutput(out, nonce)
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

// parseOutput reads program.sh's report. Files are fenced by the nonce, so
// their bytes can hold anything.
func parseOutput(out []byte, nonce string) (parsed, error) {
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

	if l, ok := line(); !ok || l != "hermes-drain/2 "+nonce {
		return r, unexpected("no header; is sh missing in the container?")
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

	fence := []byte("\n--" + nonce + "-- ")
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
			i := bytes.Index(rest, fence)
			if i < 0 {
				return r, unexpected("unterminated " + f.name + " file")
			}
			data := rest[:i]
			rest = rest[i+len(fence):]
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
	if l, ok := line(); !ok || l != "end "+nonce {
		return r, unexpected("no end")
	}
	return r, nil
}
