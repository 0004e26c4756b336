package netsplit

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// Gossip is a memberlist transport for one host: memberlist's own UDP and
// TCP transport, with packets to and from faulted links dropped and
// streams dialed through the host. Set it as memberlist.Config.Transport;
// memberlist shuts it down with itself, so each start needs a new one.
type Gossip struct {
	inner   *memberlist.NetTransport
	host    *Host
	packets chan *memberlist.Packet
	stop    chan struct{} // Shutdown began: forward nothing more
	done    chan struct{} // inner is shut: nothing more to drain
	once    sync.Once
	err     error
	wg      sync.WaitGroup
}

var _ memberlist.NodeAwareTransport = (*Gossip)(nil)

// Gossip listens for gossip on bind (host:port, UDP and TCP) for h.
// logger may be nil.
func (h *Host) Gossip(bind string, logger *log.Logger) (*Gossip, error) {
	host, port, err := net.SplitHostPort(bind)
	if err != nil {
		return nil, fmt.Errorf("gossip bind address %q: %w", bind, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return nil, fmt.Errorf("gossip bind port %q: %w", bind, err)
	}
	if logger == nil {
		logger = log.New(io.Discard, "", 0)
	}
	inner, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{host}, BindPort: p, Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("gossip transport on %s: %w", bind, err)
	}
	g := &Gossip{inner: inner, host: h, packets: make(chan *memberlist.Packet), stop: make(chan struct{}), done: make(chan struct{})}
	g.wg.Go(g.receive)
	return g, nil
}

// receive passes on the packets whose sender's link is open. Senders on
// this network drop their own packets to a faulted link already; this
// catches the rest (a sender that bypasses the network), so the fault
// holds in both directions whoever sends. It drains the inner transport
// until that is shut, since its UDP reader blocks on every packet.
func (g *Gossip) receive() {
	for {
		select {
		case p := <-g.inner.PacketCh():
			if g.host.nw.Fault(g.host.name, g.host.nw.Owner(p.From.String())) != Open {
				g.host.nw.count(func(s *Stats) { s.Dropped++ })
				continue
			}
			select {
			case g.packets <- p:
			case <-g.stop:
			}
		case <-g.done:
			return
		}
	}
}

// FinalAdvertiseAddr implements memberlist.Transport.
func (g *Gossip) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	return g.inner.FinalAdvertiseAddr(ip, port)
}

// WriteTo implements memberlist.Transport.
func (g *Gossip) WriteTo(b []byte, addr string) (time.Time, error) {
	return g.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// WriteToAddress implements memberlist.NodeAwareTransport. A packet over a
// faulted link is dropped without an error, as UDP would lose it.
func (g *Gossip) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if g.host.nw.Fault(g.host.name, g.host.nw.Owner(a.Addr)) != Open {
		g.host.nw.count(func(s *Stats) { s.Dropped++ })
		return time.Now(), nil
	}
	return g.inner.WriteToAddress(b, a)
}

// PacketCh implements memberlist.Transport.
func (g *Gossip) PacketCh() <-chan *memberlist.Packet { return g.packets }

// DialTimeout implements memberlist.Transport.
func (g *Gossip) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return g.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// DialAddressTimeout implements memberlist.NodeAwareTransport: push/pull
// and the TCP fallback of probes go through the host's links.
func (g *Gossip) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return g.host.DialContext(ctx, "tcp", a.Addr)
}

// StreamCh implements memberlist.Transport. Accepted streams pass as they
// are: the dialing end decides whether a stream crosses a fault.
func (g *Gossip) StreamCh() <-chan net.Conn { return g.inner.StreamCh() }

// Shutdown implements memberlist.Transport. It may be called more than
// once. Streams accepted meanwhile are closed: memberlist stops reading
// them at shutdown, and the inner transport's accept loop, blocked on
// handing one over, would never end.
func (g *Gossip) Shutdown() error {
	g.once.Do(func() {
		close(g.stop)
		g.wg.Go(func() {
			for {
				select {
				case c := <-g.inner.StreamCh():
					c.Close()
				case <-g.done:
					return
				}
			}
		})
		g.err = g.inner.Shutdown()
		close(g.done)
		g.wg.Wait()
	})
	return g.err
}
