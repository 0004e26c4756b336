package netsplit

import (
	"net"
	"os"
	"sync"
	"time"
)

// conn is the dialing end of a connection between two hosts. While their
// link is blackholed its reads and writes wait (until the link changes, the
// deadline passes or the connection closes); a cut closes it.
type conn struct {
	net.Conn
	nw       *Network
	from, to string

	closeOnce sync.Once
	closed    chan struct{}

	mu     sync.Mutex
	rdl    time.Time     // read deadline
	wdl    time.Time     // write deadline
	kick   chan struct{} // closed when a deadline changes, so waits look again
	readMu sync.Mutex    // one Read at a time owns held
	// held is what a read took off the socket while the link went dark;
	// it is handed out once the link is open again, so nothing crosses a
	// blackhole, not even what was in flight when it began.
	held    []byte
	heldErr error
}

func newConn(nw *Network, c net.Conn, from, to string) *conn {
	return &conn{Conn: c, nw: nw, from: from, to: to, closed: make(chan struct{}), kick: make(chan struct{})}
}

// Read implements net.Conn.
func (c *conn) Read(p []byte) (int, error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	if err := c.wait("read", true); err != nil {
		return 0, err
	}
	if len(c.held) > 0 || c.heldErr != nil {
		n := copy(p, c.held)
		c.held = c.held[n:]
		if len(c.held) > 0 {
			return n, nil
		}
		err := c.heldErr
		c.held, c.heldErr = nil, nil
		return n, err
	}
	n, err := c.Conn.Read(p)
	if n == 0 {
		return n, err
	}
	if werr := c.wait("read", true); werr != nil {
		c.held = append([]byte(nil), p[:n]...)
		c.heldErr = err
		return 0, werr
	}
	return n, err
}

// Write implements net.Conn.
func (c *conn) Write(p []byte) (int, error) {
	if err := c.wait("write", false); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// Close implements net.Conn.
func (c *conn) Close() error {
	err := net.ErrClosed
	c.closeOnce.Do(func() {
		close(c.closed)
		c.nw.mu.Lock()
		delete(c.nw.conns, c)
		c.nw.mu.Unlock()
		err = c.Conn.Close()
	})
	return err
}

// SetDeadline implements net.Conn.
func (c *conn) SetDeadline(t time.Time) error {
	c.setDeadline(&t, &t)
	return c.Conn.SetDeadline(t)
}

// SetReadDeadline implements net.Conn.
func (c *conn) SetReadDeadline(t time.Time) error {
	c.setDeadline(&t, nil)
	return c.Conn.SetReadDeadline(t)
}

// SetWriteDeadline implements net.Conn.
func (c *conn) SetWriteDeadline(t time.Time) error {
	c.setDeadline(nil, &t)
	return c.Conn.SetWriteDeadline(t)
}

func (c *conn) setDeadline(r, w *time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r != nil {
		c.rdl = *r
	}
	if w != nil {
		c.wdl = *w
	}
	close(c.kick)
	c.kick = make(chan struct{})
}

// wait returns once the link is open, or an error like the kernel's when
// the deadline passes (a timeout) or the connection is closed.
func (c *conn) wait(op string, read bool) error {
	for {
		f, changed := c.nw.watch(c.from, c.to)
		select {
		case <-c.closed:
			return c.opError(op, net.ErrClosed)
		default:
		}
		switch f {
		case Open:
			return nil
		case Cut:
			// The cut closes the connection itself; a wait that saw the
			// cut first need not race it.
			c.Close()
			return c.opError(op, net.ErrClosed)
		}
		c.mu.Lock()
		dl, kick := c.wdl, c.kick
		if read {
			dl = c.rdl
		}
		c.mu.Unlock()
		if err := c.sleep(changed, kick, dl); err != nil {
			return c.opError(op, err)
		}
	}
}

// sleep waits for the link or a deadline to change; it fails when the
// deadline passes or the connection closes.
func (c *conn) sleep(changed, kick <-chan struct{}, deadline time.Time) error {
	var expired <-chan time.Time
	if !deadline.IsZero() {
		d := time.Until(deadline)
		if d <= 0 {
			return os.ErrDeadlineExceeded
		}
		t := time.NewTimer(d)
		defer t.Stop()
		expired = t.C
	}
	select {
	case <-changed:
		return nil
	case <-kick:
		return nil
	case <-c.closed:
		return net.ErrClosed
	case <-expired:
		return os.ErrDeadlineExceeded
	}
}

func (c *conn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}
