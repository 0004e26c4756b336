package netsplit

import (
	"context"
	"net"
	"os"
	"syscall"
)

// Host is one host's way onto the network: what it dials goes through the
// link between it and the address's owner.
type Host struct {
	nw   *Network
	name string
}

// Host returns host name's view of the network. A host need not own any
// address: a test's HTTP client is a host too, so that pausing a node can
// silence it toward the test as well.
func (n *Network) Host(name string) *Host { return &Host{nw: n, name: name} }

// Name is the host's name.
func (h *Host) Name() string { return h.name }

// DialContext connects to addr like net.Dialer.DialContext, through the
// link to addr's owner: a cut refuses at once, a blackhole hangs until ctx
// ends (and connects if the link opens first). Its signature fits
// http.Transport.DialContext.
func (h *Host) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	to := h.nw.Owner(addr)
	for {
		f, changed := h.nw.watch(h.name, to)
		if f == Open {
			break
		}
		if f == Cut {
			h.nw.count(func(s *Stats) { s.Refused++ })
			return nil, &net.OpError{Op: "dial", Net: network, Addr: fakeAddr(network, addr), Err: refused{}}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			h.nw.count(func(s *Stats) { s.TimedOut++ })
			err := ctx.Err()
			if err == context.DeadlineExceeded {
				err = os.ErrDeadlineExceeded
			}
			return nil, &net.OpError{Op: "dial", Net: network, Addr: fakeAddr(network, addr), Err: err}
		}
	}
	var d net.Dialer
	raw, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	c := newConn(h.nw, raw, h.name, to)
	h.nw.mu.Lock()
	f := h.nw.faultLocked(h.name, to)
	if f != Cut {
		h.nw.conns[c] = struct{}{}
	}
	h.nw.mu.Unlock()
	if f == Cut {
		// The cut began while the connection was being made.
		raw.Close()
		h.nw.count(func(s *Stats) { s.Refused++ })
		return nil, &net.OpError{Op: "dial", Net: network, Addr: raw.RemoteAddr(), Err: refused{}}
	}
	return c, nil
}

// refused is ErrRefused that also matches syscall.ECONNREFUSED, so code
// that classifies dial errors by errno treats a cut like a refusing port.
type refused struct{}

func (refused) Error() string { return ErrRefused.Error() }

func (refused) Is(target error) bool { return target == ErrRefused || target == syscall.ECONNREFUSED }

// fakeAddr names the dialed address in an error without resolving it.
func fakeAddr(network, addr string) net.Addr {
	return &addrOf{network: network, addr: addr}
}

type addrOf struct{ network, addr string }

func (a *addrOf) Network() string { return a.network }
func (a *addrOf) String() string  { return a.addr }
