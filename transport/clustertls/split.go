package clustertls

import (
	"context"
	"crypto/tls"
	"net"
)

// Split serves two TLS audiences on one listener: nodes, which dial with
// ServerName and must complete peer's mutual handshake under the cluster
// key, and the public API's clients, who get public (the operator's
// certificate). The ClientHello's server name picks the config, and each
// connection goes, once its handshake has completed, to the listener of
// its audience. A client that names ServerName without the cluster key
// fails peer's handshake and reaches neither. reject hears of every
// connection that named ServerName and was turned away; failed public
// handshakes (scanners, a browser that distrusts the certificate) are not
// the cluster's business and are dropped quietly.
func Split(inner net.Listener, peer, public *tls.Config, reject func(addr net.Addr, err error)) (peers, clients net.Listener) {
	s := &split{inner: inner, peer: peer, public: public, reject: reject, acceptor: newAcceptor()}
	s.peers = &splitHalf{s: s, conns: make(chan net.Conn)}
	s.clients = &splitHalf{s: s, conns: make(chan net.Conn)}
	go s.run(inner, s.handshake)
	return s.peers, s.clients
}

type split struct {
	*acceptor
	inner          net.Listener
	peer, public   *tls.Config
	reject         func(net.Addr, error)
	peers, clients *splitHalf
}

func (s *split) handshake(c net.Conn) {
	asPeer := false
	tc := tls.Server(c, &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			if h.ServerName == ServerName {
				asPeer = true
				return s.peer, nil
			}
			return s.public, nil
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), HandshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		if asPeer && s.reject != nil {
			s.reject(c.RemoteAddr(), err)
		}
		c.Close()
		return
	}
	to := s.clients
	if asPeer {
		to = s.peers
	}
	select {
	case to.conns <- tc:
	case <-s.done:
		tc.Close()
	}
}

type splitHalf struct {
	s     *split
	conns chan net.Conn
}

// Accept implements net.Listener.
func (h *splitHalf) Accept() (net.Conn, error) {
	select {
	case c := <-h.conns:
		return c, nil
	case <-h.s.done:
		return nil, h.s.err
	}
}

// Close implements net.Listener; it closes both halves.
func (h *splitHalf) Close() error {
	err := h.s.inner.Close()
	h.s.stop(net.ErrClosed)
	return err
}

// Addr implements net.Listener.
func (h *splitHalf) Addr() net.Addr { return h.s.inner.Addr() }
