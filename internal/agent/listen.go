package agent

import (
	"net"
	"sync"

	"golang.org/x/net/netutil"
)

// boundedListener accepts at most total connections at once, and at most
// perPeer from any one address: a peer that holds connections open takes
// its own share, not the kubelet's or the operator's. A connection over the
// peer's share is closed as soon as it is accepted.
func boundedListener(l net.Listener, total, perPeer int) net.Listener {
	return &peerLimit{Listener: netutil.LimitListener(l, total), perPeer: perPeer, open: map[string]int{}}
}

type peerLimit struct {
	net.Listener
	perPeer int

	mu   sync.Mutex
	open map[string]int
}

func (l *peerLimit) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		peer := peerOf(c)
		l.mu.Lock()
		over := l.open[peer] >= l.perPeer
		if !over {
			l.open[peer]++
		}
		l.mu.Unlock()
		if over {
			c.Close()
			continue
		}
		return &peerConn{Conn: c, release: func() { l.release(peer) }}, nil
	}
}

func (l *peerLimit) release(peer string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[peer]--; l.open[peer] <= 0 {
		delete(l.open, peer)
	}
}

func peerOf(c net.Conn) string {
	host, _, err := net.SplitHostPort(c.RemoteAddr().String())
	if err != nil {
		return c.RemoteAddr().String()
	}
	return host
}

// peerConn gives its peer's share back once, when closed.
type peerConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *peerConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
