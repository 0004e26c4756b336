package clustertls

import (
	"errors"
	"io"
	"net"
	"time"
)

// recordTypeHandshake is the first byte of every TLS connection (a
// handshake record); no HTTP method starts with it.
const recordTypeHandshake = 0x16

// Demux splits the connections of one port in two by their first byte:
// TLS (node-to-node calls, to be wrapped by Listener) and everything else
// (the public plain-HTTP API). The first byte is read on a goroutine per
// connection, bounded by HandshakeTimeout, so a silent client blocks no
// one. Closing either listener closes ln.
func Demux(ln net.Listener) (plain, secure net.Listener) {
	d := &demux{ln: ln, acceptor: newAcceptor()}
	d.plain = &half{d: d, conns: make(chan net.Conn)}
	d.secure = &half{d: d, conns: make(chan net.Conn)}
	go d.run(ln, d.sniff)
	return d.plain, d.secure
}

type demux struct {
	*acceptor
	ln            net.Listener
	plain, secure *half
}

func (d *demux) sniff(c net.Conn) {
	var b [1]byte
	_ = c.SetReadDeadline(time.Now().Add(HandshakeTimeout))
	if _, err := io.ReadFull(c, b[:]); err != nil {
		c.Close()
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	to := d.plain
	if b[0] == recordTypeHandshake {
		to = d.secure
	}
	k := peeked{first: b[0], has: true}
	var pc net.Conn = &peekedConn{Conn: c, peeked: k}
	if tc, ok := c.(*net.TCPConn); ok {
		pc = &peekedTCPConn{TCPConn: tc, peeked: k}
	}
	select {
	case to.conns <- pc:
	case <-d.done:
		c.Close()
	}
}

type half struct {
	d     *demux
	conns chan net.Conn
}

func (h *half) Accept() (net.Conn, error) {
	select {
	case c := <-h.conns:
		return c, nil
	case <-h.d.done:
		return nil, h.d.err
	}
}

func (h *half) Close() error {
	err := h.d.ln.Close()
	h.d.stop(net.ErrClosed)
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

func (h *half) Addr() net.Addr { return h.d.ln.Addr() }

// peeked is the byte the demux read, given back by the first Read.
type peeked struct {
	first byte
	has   bool
}

// take puts the byte into p if it is still held.
func (k *peeked) take(p []byte) bool {
	if !k.has || len(p) == 0 {
		return false
	}
	p[0], k.has = k.first, false
	return true
}

// peekedConn gives back the byte the demux read.
type peekedConn struct {
	net.Conn
	peeked
}

func (c *peekedConn) Read(p []byte) (int, error) {
	if c.take(p) {
		return 1, nil
	}
	return c.Conn.Read(p)
}

// peekedTCPConn is peekedConn for TCP, keeping *net.TCPConn's ReadFrom
// (sendfile) and CloseWrite promoted, which net/http's responses use.
type peekedTCPConn struct {
	*net.TCPConn
	peeked
}

func (c *peekedTCPConn) Read(p []byte) (int, error) {
	if c.take(p) {
		return 1, nil
	}
	return c.TCPConn.Read(p)
}

// WriteTo must not skip the byte read already, as the promoted
// (*net.TCPConn).WriteTo would.
func (c *peekedTCPConn) WriteTo(w io.Writer) (int64, error) {
	var n int64
	var b [1]byte
	if c.take(b[:]) {
		if _, err := w.Write(b[:]); err != nil {
			return 0, err
		}
		n = 1
	}
	m, err := c.TCPConn.WriteTo(w)
	return n + m, err
}
