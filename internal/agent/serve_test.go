package agent

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hermes-agent/hermes-drain-operator/internal/calls"
	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
	"github.com/hermes-agent/hermes-drain-operator/internal/satoken/satokentest"
	"github.com/hermes-agent/hermes-drain-operator/internal/testenv"
)

// serving runs f's agent as Run does, on loopback ports of its own, with
// lim, until the test ends; it returns the calls' and the probes' address.
func (f *fixture) serving(lim limits) (callsAddr, probesAddr string) {
	f.t.Helper()
	f.server.limits = lim
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.t.Fatal(err)
	}
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 3)
	for _, run := range []func(context.Context) error{f.server.WatchGateway,
		func(ctx context.Context) error { return f.server.ServeCalls(ctx, l) },
		func(ctx context.Context) error { return f.server.ServeProbes(ctx, pl) }} {
		go func() { _ = run(ctx); done <- struct{}{} }()
	}
	f.t.Cleanup(func() {
		cancel()
		for range 3 {
			<-done
		}
	})
	return l.Addr().String(), pl.Addr().String()
}

var insecureTLS = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the agent's certificate is self-signed

// A call half sent, by the operator's token or by no one's, holds its
// connection no longer than the read bound.
func TestAHalfSentCallDoesNotHoldItsConnection(t *testing.T) {
	f := newFixture(t)
	lim := defaultLimits
	lim.callRead = 300 * time.Millisecond
	addr, _ := f.serving(lim)
	for name, token := range map[string]string{"no one's token": "not-a-token", "the operator's token": f.token(nil)} {
		t.Run(name, func(t *testing.T) {
			c, err := tls.Dial("tcp", addr, insecureTLS)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			fmt.Fprintf(c, "POST %sread HTTP/1.1\r\nHost: agent\r\nAuthorization: Bearer %s\r\n%s: %s\r\n%s: %s\r\nContent-Length: 1000\r\n\r\n{\"home\":",
				calls.AgentPathPrefix, token, calls.HeaderNonce, nonce(), calls.HeaderTime, time.Now().UTC().Format(time.RFC3339Nano))
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			start := time.Now()
			_, err = io.Copy(io.Discard, c) // until the agent closes the connection
			if err != nil || time.Since(start) > 5*time.Second {
				t.Errorf("the connection was held %s (%v): want it closed within the read bound", time.Since(start).Round(time.Millisecond), err)
			}
		})
	}
}

// The calls are HTTP/1.1 only: HTTP/2's rapid-reset and stream
// cancellation attacks do not apply.
func TestCallsAreNotServedOverHTTP2(t *testing.T) {
	f := newFixture(t)
	addr, _ := f.serving(defaultLimits)
	cfg := insecureTLS.Clone()
	cfg.NextProtos = []string{"h2", "http/1.1"}
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if p := c.ConnectionState().NegotiatedProtocol; p == "h2" {
		t.Errorf("negotiated %q", p)
	}
}

// Before it knows the API server's keys the agent answers calls 503 (and
// its probes as usual); a refusal tells the caller nothing of why.
func TestCallsWaitForTheAPIServersKeysAndRefusalsSayNothing(t *testing.T) {
	f := newFixture(t)
	f.server.verifier.Store(nil) // as at a start during an API server outage
	if code, _, _ := f.post("read", f.token(nil), nonce(), time.Now(), calls.AgentCall{}); code != http.StatusServiceUnavailable {
		t.Errorf("a call before the keys are known: %d, want 503", code)
	}
	f.server.Trust("https://kubernetes.default.svc", f.issuer.Keys())
	if code, _, _ := f.post("read", f.token(nil), nonce(), time.Now(), calls.AgentCall{}); code != http.StatusOK {
		t.Errorf("a call once they are: %d, want 200", code)
	}

	req, _ := http.NewRequest(http.MethodPost, f.http.URL+calls.AgentPathPrefix+"read", strings.NewReader("{}"))
	req.Header.Set("Authorization", "Bearer "+f.token(func(t *satokentest.Token) { t.Issuer = "https://elsewhere" }))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || strings.TrimSpace(string(body)) != "Unauthorized" {
		t.Errorf("a refusal answered %d %q: want 401 and nothing of why", resp.StatusCode, body)
	}
}

// floodChild is set in the environment of the agent the flood test starts
// in a process of its own, under a low descriptor limit.
const floodChild = "HERMES_DRAIN_AGENT_FLOOD_CHILD"

// A peer on the pod network that opens hundreds of connections to both
// servers and holds them takes neither the pod out of traffic nor the
// operator's calls away: the agent, in a process of its own under a limit
// of 128 descriptors, keeps answering /readyz from the gateway's state and
// serving the operator.
func TestAFloodOfConnectionsLeavesTheProbeAndTheOperatorTheirs(t *testing.T) {
	if os.Getenv(floodChild) != "" {
		serveUnderALowDescriptorLimit(t)
		return
	}
	child := exec.Command(os.Args[0], "-test.run=^TestAFloodOfConnectionsLeavesTheProbeAndTheOperatorTheirs$", "-test.v")
	child.Env = append(os.Environ(), floodChild+"=1")
	stdin, err := child.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); _ = child.Wait() })
	var callsAddr, probesAddr, token string
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		if _, err := fmt.Sscanf(lines.Text(), "agent %s %s %s", &callsAddr, &probesAddr, &token); err == nil {
			break
		}
	}
	if token == "" {
		t.Fatal("the agent did not start")
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()

	readyz := func() (int, string) {
		c := &http.Client{Timeout: 5 * time.Second}
		resp, err := c.Get("http://" + probesAddr + "/readyz")
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		code, body := readyz()
		return code == http.StatusOK, fmt.Sprintf("/readyz before the flood: %d %s", code, body)
	})

	// The flood, from 127.0.0.2: 300 connections to the calls, 100 to the
	// probes, held open.
	flooder := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 2 * time.Second}
	var held []net.Conn
	t.Cleanup(func() {
		for _, c := range held {
			c.Close()
		}
	})
	for i := range 400 {
		addr := callsAddr
		if i >= 300 {
			addr = probesAddr
		}
		if c, err := flooder.Dial("tcp", addr); err == nil {
			held = append(held, c)
		}
	}

	if code, body := readyz(); code != http.StatusOK {
		t.Errorf("/readyz under the flood: %d %s", code, body)
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: insecureTLS}}
	req, _ := http.NewRequest(http.MethodPost, "https://"+callsAddr+calls.AgentPathPrefix+"read", strings.NewReader("{}"))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set(calls.HeaderNonce, nonce())
	req.Header.Set(calls.HeaderTime, time.Now().UTC().Format(time.RFC3339Nano))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("the operator's call under the flood: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("the operator's call under the flood: %s", resp.Status)
	}
}

// serveUnderALowDescriptorLimit is the flood test's agent: it prints its
// addresses and a token of the operator's, and serves until its standard
// input closes.
func serveUnderALowDescriptorLimit(t *testing.T) {
	f := newFixture(t)
	startGateway(t, f.home, marker.StateRunning)
	callsAddr, probesAddr := f.serving(defaultLimits)
	limitDescriptors(t, 128)
	fmt.Printf("agent %s %s %s\n", callsAddr, probesAddr, f.token(nil))
	_, _ = io.Copy(io.Discard, os.Stdin)
}

// limitDescriptors lowers this process's soft limit of open descriptors to
// n (the tests that do run in a process of their own).
func limitDescriptors(t *testing.T, n uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	lim.Cur = n
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
}

// descriptorsChild is set in the environment of the agent the descriptor
// test starts in a process of its own.
const descriptorsChild = "HERMES_DRAIN_AGENT_DESCRIPTORS_CHILD"

// A read of the home that fails because the agent has no descriptor left
// says nothing of the gateway: /readyz keeps its last answer, and follows
// the gateway again once descriptors are free.
func TestReadyzKeepsItsAnswerWithoutDescriptors(t *testing.T) {
	if os.Getenv(descriptorsChild) == "" {
		child := exec.Command(os.Args[0], "-test.run=^TestReadyzKeepsItsAnswerWithoutDescriptors$")
		child.Env = append(os.Environ(), descriptorsChild+"=1")
		if out, err := child.CombinedOutput(); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return
	}
	f := newFixture(t)
	startGateway(t, f.home, marker.StateRunning)
	r := f.server.ready
	r.refresh(context.Background())
	if !r.ready {
		t.Fatalf("not ready before: %s", r.why)
	}
	limitDescriptors(t, 256)
	var held []*os.File
	for {
		f, err := os.Open(os.DevNull)
		if err != nil {
			break
		}
		held = append(held, f)
	}
	r.refresh(context.Background())
	ready, why := r.ready, r.why
	for _, f := range held {
		f.Close()
	}
	if !ready {
		t.Errorf("/readyz turned not ready for want of descriptors: %s", why)
	}
	startGateway(t, f.home, marker.StateDraining)
	r.refresh(context.Background())
	if r.ready {
		t.Error("/readyz no longer follows the gateway once descriptors are free")
	}
}
