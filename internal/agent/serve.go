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
	"math/big"
	"net"
	"net/http"
	"os"
	"time"

	"golang.org/x/sync/errgroup"
)

// Run serves the operator's calls and the kubelet's probes, and watches the
// gateway, until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	probes := &http.Server{Addr: s.opts.ProbeListen, Handler: s.ProbeHandler(), ReadHeaderTimeout: 5 * time.Second}
	l, err := net.Listen("tcp", s.opts.Listen)
	if err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.WatchGateway(ctx) })
	g.Go(func() error { return s.ServeCalls(ctx, l) })
	g.Go(func() error { return serveUntil(ctx, probes, probes.ListenAndServe) })
	return g.Wait()
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
	calls := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}}
	return serveUntil(ctx, calls, func() error { return calls.ServeTLS(l, "", "") })
}

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
