package agent

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
)

// Run serves the operator's calls and the kubelet's probes, and watches the
// gateway, until ctx ends. Both servers are open to the pod network (the
// kubelet probes the pod's IP), so each bounds what one caller can hold:
// every phase of a request is timed, headers are small, idle connections
// are closed, HTTP/2 is off (its rapid-reset and stream-cancellation
// attacks, CVE-2023-44487 and CVE-2023-39325), and the open connections are
// capped in all and per peer, so that however many connections a peer
// holds open the process keeps descriptors to read the gateway's files
// with, and the kubelet and the operator get theirs.
func (s *Server) Run(ctx context.Context) error {
	l, err := net.Listen("tcp", s.opts.Listen)
	if err != nil {
		return err
	}
	pl, err := net.Listen("tcp", s.opts.ProbeListen)
	if err != nil {
		l.Close()
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.WatchGateway(ctx) })
	g.Go(func() error { return s.ServeCalls(ctx, l) })
	g.Go(func() error { return s.ServeProbes(ctx, pl) })
	return g.Wait()
}

// limits bound what one caller can hold of the two servers.
type limits struct {
	// callConns and probeConns are the connections open at once, of all
	// peers and of each peer.
	callConns, callConnsPerPeer   int
	probeConns, probeConnsPerPeer int
	// callRead bounds reading a call, from the connection's accept (TLS
	// handshake included) to the end of its body; callWrite, from the end
	// of its headers to the end of the answer (the three calls read and
	// write two small files).
	callRead, callWrite time.Duration
	// probe bounds each phase of a probe.
	probe time.Duration
	idle  time.Duration
}

// defaultLimits: a call is a few KiB each way and takes milliseconds; the
// operator keeps at most one connection per agent idle, for a minute. A
// probe is one GET every few seconds.
var defaultLimits = limits{callConns: 32, callConnsPerPeer: 8, probeConns: 16, probeConnsPerPeer: 4, callRead: 10 * time.Second, callWrite: 30 * time.Second,
	probe: 5 * time.Second, idle: 90 * time.Second}

// maxHeaderBytes bounds a request's headers: a token (at most 16 KiB) and
// a few short ones.
const maxHeaderBytes = 32 << 10

// ServeProbes serves the kubelet's probes on l until ctx ends.
func (s *Server) ServeProbes(ctx context.Context, l net.Listener) error {
	lim := s.limits
	probes := &http.Server{Handler: s.ProbeHandler(), ReadHeaderTimeout: lim.probe, ReadTimeout: lim.probe,
		WriteTimeout: lim.probe, IdleTimeout: lim.idle, MaxHeaderBytes: maxHeaderBytes, ErrorLog: s.peerErrors()}
	return serveUntil(ctx, probes, func() error { return probes.Serve(boundedListener(l, lim.probeConns, lim.probeConnsPerPeer)) })
}

// WatchGateway keeps what /readyz answers current, from the gateway's
// files, until ctx ends.
func (s *Server) WatchGateway(ctx context.Context) error { return s.ready.run(ctx) }

// ServeCalls serves only the operator's calls (HTTPS) on l until ctx ends:
// what the scale simulation runs for each of thousands of pods in one
// process (test/cluster's agent farm).
func (s *Server) ServeCalls(ctx context.Context, l net.Listener) error {
	cert, err := selfSigned()
	if err != nil {
		return err
	}
	lim := s.limits
	calls := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: lim.callRead, ReadTimeout: lim.callRead,
		WriteTimeout: lim.callWrite, IdleTimeout: lim.idle, MaxHeaderBytes: maxHeaderBytes, ErrorLog: s.peerErrors(),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13, NextProtos: []string{"http/1.1"}},
		// Not nil: no HTTP/2.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){}}
	return serveUntil(ctx, calls, func() error { return calls.ServeTLS(boundedListener(l, lim.callConns, lim.callConnsPerPeer), "", "") })
}

// peerErrors logs what a server says of its peers (failed handshakes,
// accept errors) as refusals are: at most once per refusalLogEvery, since
// any peer can cause them.
func (s *Server) peerErrors() *log.Logger {
	return log.New(writerFunc(func(p []byte) (int, error) {
		s.refusals.Do(func() {
			s.log.Info("connection refused (more within 10s are not logged)", "why", strings.TrimSpace(string(p)))
		})
		return len(p), nil
	}), "", 0)
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func serveUntil(ctx context.Context, srv *http.Server, serve func() error) error {
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	if err := serve(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// selfSigned makes the agent's serving certificate, new at every start and
// never stored. The operator does not check it against a CA: it
// authenticates the agent by the pod-bound token in every reply
// (docs/agent.md says what that does and does not stop).
func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return tls.Certificate{}, err
	}
	host, _ := os.Hostname()
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: "hermes-drain-agent " + host}, DNSNames: []string{host},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(1, 0, 0),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
