// Package netsplit is a network whose links tests can cut, for Pier nodes
// running in one process. Every node listens on its own 127.0.0.1 ports;
// the test registers which addresses belong to which host, and each host
// dials (raft, the peer service, gossip streams) and sends gossip packets
// through its Host, so the network knows both ends of every connection and
// packet and can fail the links a test chose.
//
// Faults sit at the TCP and UDP level, under everything the nodes layer on
// top: cluster TLS is handshaken over a netsplit connection, and memberlist
// encrypts packets before they reach the Transport this package wraps. A
// partitioned node therefore fails the way it would on a real network, not
// through a shortcut in the code under test.
//
// Two kinds of fault, per pair of hosts and in both directions:
//
//   - Cut is a link that refuses: dials fail at once, connections in use
//     are closed when the cut starts, packets are dropped (an iptables
//     REJECT, a dead switch port).
//   - Blackhole is a link that says nothing: dials hang until their
//     deadline, connections in use stall (reads and writes wait, honouring
//     deadlines, and go on when the link heals), packets are dropped (an
//     iptables DROP, a frozen process: the chaos suite's isolate and pause).
//
// Only the dialing end of a connection is wrapped: an accepted connection
// comes from an ephemeral port that names no host. Stalling or closing the
// dialing end stops both directions of the stream, since the accepting end
// only ever talks to it.
package netsplit

import (
	"errors"
	"fmt"
	"net"
	"sync"
)

// Fault is the state of the link between two hosts.
type Fault uint8

const (
	// Open is a working link.
	Open Fault = iota
	// Cut refuses: dials fail, connections are closed, packets dropped.
	Cut
	// Blackhole is silent: dials and connections hang, packets dropped.
	Blackhole
)

func (f Fault) String() string {
	switch f {
	case Open:
		return "open"
	case Cut:
		return "cut"
	case Blackhole:
		return "blackhole"
	}
	return fmt.Sprintf("fault(%d)", uint8(f))
}

// ErrRefused is the error of a dial over a cut link, inside a *net.OpError
// as the kernel's ECONNREFUSED would be.
var ErrRefused = errors.New("netsplit: connection refused by a cut link")

// Network is the set of hosts, the addresses they own and the faults
// between them. The zero value is not usable; call New.
type Network struct {
	mu     sync.Mutex
	owner  map[string]string // canonical host:port -> host
	faults map[pair]Fault
	conns  map[*conn]struct{}
	// changed is closed and replaced whenever a fault changes, so that
	// everything waiting on a blackholed link looks again.
	changed chan struct{}
	stats   Stats
}

// Stats counts what the faults did; tests use them to show a partition was
// in force, not merely declared.
type Stats struct {
	Refused  int64 // dials refused by a cut
	TimedOut int64 // dials that hung on a blackhole until their deadline
	Closed   int64 // connections closed when a cut started
	Dropped  int64 // gossip packets dropped, sent or received
}

// pair is an unordered pair of hosts: a link is faulted in both directions.
type pair struct{ a, b string }

func pairOf(a, b string) pair {
	if b < a {
		a, b = b, a
	}
	return pair{a, b}
}

// New returns a network with every link open.
func New() *Network {
	return &Network{
		owner:   map[string]string{},
		faults:  map[pair]Fault{},
		conns:   map[*conn]struct{}{},
		changed: make(chan struct{}),
	}
}

// Register records that addrs (host:port, for TCP and UDP alike) belong to
// host. An address registered before to another host moves to this one,
// as a restarted node may take over another's ports. Traffic to an address
// nobody registered is never faulted.
func (n *Network) Register(host string, addrs ...string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, a := range addrs {
		n.owner[canonical(a)] = host
	}
}

// Owner returns the host that registered addr, or "".
func (n *Network) Owner(addr string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.owner[canonical(addr)]
}

// Set puts fault f on the link between hosts a and b, both ways. A cut
// closes the connections open between them; a change away from a
// blackhole lets stalled connections and dials go on.
func (n *Network) Set(a, b string, f Fault) {
	n.set(map[pair]Fault{pairOf(a, b): f}, false)
}

// Partition puts fault f on every link between hosts of different sides;
// links within a side and to hosts on no side keep their state.
func (n *Network) Partition(f Fault, sides ...[]string) {
	links := map[pair]Fault{}
	for i, side := range sides {
		for _, other := range sides[i+1:] {
			for _, a := range side {
				for _, b := range other {
					links[pairOf(a, b)] = f
				}
			}
		}
	}
	n.set(links, false)
}

// Heal opens every link.
func (n *Network) Heal() { n.set(nil, true) }

// Fault returns the state of the link between hosts a and b.
func (n *Network) Fault(a, b string) Fault {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.faultLocked(a, b)
}

// Stats returns what the faults have done so far.
func (n *Network) Stats() Stats {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stats
}

func (n *Network) set(links map[pair]Fault, reset bool) {
	n.mu.Lock()
	if reset {
		n.faults = map[pair]Fault{}
	}
	for p, f := range links {
		if p.a == p.b {
			continue
		}
		if f == Open {
			delete(n.faults, p)
		} else {
			n.faults[p] = f
		}
	}
	var doomed []*conn
	for c := range n.conns {
		if n.faultLocked(c.from, c.to) == Cut {
			doomed = append(doomed, c)
		}
	}
	n.stats.Closed += int64(len(doomed))
	close(n.changed)
	n.changed = make(chan struct{})
	n.mu.Unlock()
	// Closed outside the lock: Close unregisters the connection.
	for _, c := range doomed {
		c.Close()
	}
}

// faultLocked is the link's state; a host's traffic to itself, and traffic
// to or from nobody's address, always flows.
func (n *Network) faultLocked(a, b string) Fault {
	if a == "" || b == "" || a == b {
		return Open
	}
	return n.faults[pairOf(a, b)]
}

// watch returns the link's state and a channel closed at its next change.
func (n *Network) watch(a, b string) (Fault, <-chan struct{}) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.faultLocked(a, b), n.changed
}

func (n *Network) count(f func(*Stats)) {
	n.mu.Lock()
	f(&n.stats)
	n.mu.Unlock()
}

// canonical spells an address the way a socket reports it, so that
// "127.0.0.1:80" registered matches a packet from "127.0.0.1:80" whatever
// spelling a dialer used.
func canonical(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); ip != nil {
		host = ip.String()
	}
	return net.JoinHostPort(host, port)
}
