package clustertls

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"time"
)

// HandshakeTimeout bounds how long a connection may take to prove itself
// before it is dropped.
const HandshakeTimeout = 10 * time.Second

// Listener wraps inner so that Accept returns only connections whose TLS
// handshake, client certificate included, has completed under cfg.
// Handshakes run concurrently, each bounded by HandshakeTimeout, so a
// connection that sends nothing holds neither Accept nor the server behind
// it. reject, if set, hears of every connection turned away.
func Listener(inner net.Listener, cfg *tls.Config, reject func(addr net.Addr, err error)) net.Listener {
	l := &listener{inner: inner, cfg: cfg, reject: reject, conns: make(chan net.Conn), acceptor: newAcceptor()}
	go l.run(inner, l.handshake)
	return l
}

type listener struct {
	*acceptor
	inner  net.Listener
	cfg    *tls.Config
	reject func(net.Addr, error)
	conns  chan net.Conn
}

// acceptor runs an accept loop that hands each connection to a goroutine
// of its own, until the listener fails; done closes then, err says why.
type acceptor struct {
	done chan struct{}
	once sync.Once
	err  error // set before done closes
}

func newAcceptor() *acceptor { return &acceptor{done: make(chan struct{})} }

func (a *acceptor) run(ln net.Listener, handle func(net.Conn)) {
	for {
		c, err := ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			a.stop(err)
			return
		}
		go handle(c)
	}
}

func (a *acceptor) stop(err error) {
	a.once.Do(func() {
		a.err = err
		close(a.done)
	})
}

func (l *listener) handshake(c net.Conn) {
	tc := tls.Server(c, l.cfg)
	ctx, cancel := context.WithTimeout(context.Background(), HandshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		if l.reject != nil {
			l.reject(c.RemoteAddr(), err)
		}
		c.Close()
		return
	}
	select {
	case l.conns <- tc:
	case <-l.done:
		tc.Close()
	}
}

// Accept implements net.Listener.
func (l *listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, l.err
	}
}

// Close implements net.Listener.
func (l *listener) Close() error {
	err := l.inner.Close()
	l.stop(net.ErrClosed)
	return err
}

// Addr implements net.Listener.
func (l *listener) Addr() net.Addr { return l.inner.Addr() }
