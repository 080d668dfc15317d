package transport

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/streaming/pkg/httpstream/wsstream"

	"github.com/hermes-agent/hermes-drain-operator/internal/calls"
)

// fakeExec serves pods/exec over WebSocket (v5.channel.k8s.io), as the API
// server does, and lets act play the command: the request's parameters, and
// the streams stdin, stdout, stderr and the error channel, in that order.
func fakeExec(t *testing.T, act func(query url.Values, streams []io.ReadWriteCloser)) *ExecRunner {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn := wsstream.NewConn(map[string]wsstream.ChannelProtocolConfig{"v5.channel.k8s.io": {Binary: true, Channels: []wsstream.ChannelType{
			wsstream.ReadChannel, wsstream.WriteChannel, wsstream.WriteChannel, wsstream.WriteChannel, wsstream.IgnoreChannel}}})
		_, streams, err := conn.Open(w, r)
		if err != nil {
			t.Errorf("the client did not speak v5.channel.k8s.io: %v", err)
			return
		}
		defer conn.Close()
		act(r.URL.Query(), streams)
	}))
	t.Cleanup(srv.Close)
	runner, err := NewExecRunner(&rest.Config{Host: srv.URL}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return runner
}

// exitedWith is the error channel's message for a command that exited 1.
const exitedWith1 = `{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"1"}]}}`

// A container that floods stderr cannot fill the operator's memory nor its
// error messages: what is kept is bounded, and the call is aborted once it
// printed more than a report could hold (item 3 of issue 23).
func TestExecBoundsStderr(t *testing.T) {
	flood := strings.Repeat("e", 64<<10)
	var sent atomic.Int64
	runner := fakeExec(t, func(_ url.Values, streams []io.ReadWriteCloser) {
		for sent.Load() < 64<<20 {
			if _, err := streams[2].Write([]byte(flood)); err != nil {
				return // the client went away
			}
			sent.Add(int64(len(flood)))
		}
		_, _ = streams[3].Write([]byte(exitedWith1))
	})
	_, err := runner.Run(context.Background(), calls.Pod{Namespace: "ns", Name: "gw-0", Container: "gateway"}, []string{"true"}, nil)
	if err == nil {
		t.Fatal("no error")
	}
	if msg := err.Error(); len(msg) > 2*maxErrorLength || !strings.Contains(msg, "printed more than expected") {
		t.Errorf("an error of %d bytes: %.200s...", len(msg), msg)
	}
	if n := sent.Load(); n >= 64<<20 {
		t.Errorf("all of the container's %d bytes of stderr were read: the call was not aborted", n)
	}
}

// The program's input travels on the exec's stdin, and the program needs
// no end to it: kwok's exec, for one, never delivers the end (item 12 of
// issue 23). The fake runs the command it is asked for on this host.
func TestExecCarriesTheInputOnStdin(t *testing.T) {
	var commands [][]string
	runner := fakeExec(t, func(query url.Values, streams []io.ReadWriteCloser) {
		commands = append(commands, query["command"])
		if query.Get("stdin") != "true" {
			t.Errorf("exec without stdin: %v", query)
		}
		r, w, err := os.Pipe()
		if err != nil {
			t.Error(err)
			return
		}
		defer w.Close() // only once the command is done: it sees no end
		go func() { _, _ = io.Copy(w, streams[0]) }()
		argv := query["command"]
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = r, streams[1], streams[2]
		err = cmd.Run()
		r.Close()
		if err != nil {
			_, _ = streams[3].Write([]byte(exitedWith1))
			return
		}
		_, _ = streams[3].Write([]byte(`{"metadata":{},"status":"Success"}`))
	})
	p := NewProgram(runner, fakeProc(t, bootID, statLine("init", "42")))
	ctx := context.Background()
	pod := calls.Pod{Namespace: "ns", Name: "gw-0", Container: "gateway"}
	home := t.TempDir()
	req := request("uid-1", "me")
	req.Replaceable = []byte("a stale\nmarker")
	if obs, err := p.Project(ctx, pod, home, req); err != nil || obs.Outcome != calls.Written {
		t.Fatalf("project: %v %v", obs.Outcome, err)
	}
	if obs, err := p.Read(ctx, pod, home); err != nil || obs.Outcome != calls.Read || obs.Marker.State != calls.FilePresent {
		t.Fatalf("read: %v %v %v", obs.Outcome, obs.Marker.State, err)
	}
	if obs, err := p.Clear(ctx, pod, home, "uid-1"); err != nil || obs.Outcome != calls.Cleared {
		t.Fatalf("clear: %v %v", obs.Outcome, err)
	}
	for _, argv := range commands {
		if len(argv) != 7 || argv[0] != "/bin/sh" {
			t.Errorf("command %q", argv[:min(len(argv), 2)])
		}
	}
}
