package uploadertest

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
)

// Listener is a net.Listener for emulators that can cut a connection in the middle of a
// request, the way a network fault does: the server stops reading and the client's write fails.
type Listener struct {
	net.Listener
	mu      sync.Mutex
	cutLeft int64 // bytes still to read before the cut; -1 when not armed
	read    atomic.Int64
}

// NewListener wraps l.
func NewListener(l net.Listener) *Listener {
	return &Listener{Listener: l, cutLeft: -1}
}

// Listen listens on a free loopback port.
func Listen() (*Listener, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	return NewListener(l), nil
}

// CutAfter arms a cut: once n more bytes have been read from clients, the connection that
// carries them is closed.
func (l *Listener) CutAfter(n int64) {
	l.mu.Lock()
	l.cutLeft = n
	l.mu.Unlock()
}

// BytesRead is every byte read from every connection (requests with their headers).
func (l *Listener) BytesRead() int64 { return l.read.Load() }

// Accept waits for the next connection.
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &conn{Conn: c, l: l}, nil
}

type conn struct {
	net.Conn
	l *Listener
}

var errCut = errors.New("uploadertest: connection cut")

func (c *conn) Read(p []byte) (int, error) {
	c.l.mu.Lock()
	left := c.l.cutLeft
	c.l.mu.Unlock()
	if left == 0 {
		return 0, c.cut()
	}
	if left > 0 && int64(len(p)) > left {
		p = p[:left]
	}
	n, err := c.Conn.Read(p)
	c.l.read.Add(int64(n))
	if left > 0 {
		c.l.mu.Lock()
		if c.l.cutLeft > 0 {
			c.l.cutLeft -= int64(n)
			if c.l.cutLeft <= 0 {
				c.l.cutLeft = 0
			}
		}
		c.l.mu.Unlock()
	}
	return n, err
}

func (c *conn) cut() error {
	c.l.mu.Lock()
	c.l.cutLeft = -1
	c.l.mu.Unlock()
	if tc, ok := c.Conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // a reset, as a dropped route or a dead proxy gives
	}
	_ = c.Conn.Close()
	return errCut
}
