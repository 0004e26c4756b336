// Package freeport picks 127.0.0.1 ports for nodes that tests and benches
// start and restart on fixed addresses.
//
// A port the kernel hands out for port 0 comes from the ephemeral range,
// the same range it picks the local port of every outgoing connection
// from. Once a node on such a port stops, any connection on the machine
// (another test package's raft pool, say) may take the port as its local
// end, and the node cannot bind it again for as long as that connection
// lives: a restart then fails for good, not for a moment. Ports below the
// ephemeral range are never handed out that way, so only an explicit bind
// can take them, and every such bind in our tests goes through here.
package freeport

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// lowest is the lowest port picked: above the well-known and most
// registered service ports.
const lowest = 10000

var (
	mu sync.Mutex
	// given keeps a process from handing out a port twice, even after the
	// first taker released it for its node to bind.
	given = map[int]bool{}
)

// Ports returns n distinct ports on 127.0.0.1, each free for both TCP and
// UDP when picked (gossip uses one port for both), below the kernel's
// ephemeral range and never returned before in this process.
func Ports(n int) ([]int, error) {
	mu.Lock()
	defer mu.Unlock()
	hi := ephemeralLow()
	var out []int
	var hold []io.Closer
	defer func() {
		for _, h := range hold {
			h.Close()
		}
	}()
	// From a random start, so that processes picking at once rarely
	// race for the same port, then every port in turn.
	span := hi - lowest
	start := rand.IntN(span)
	for i := 0; len(out) < n; i++ {
		if i == span {
			return nil, fmt.Errorf("%d free ports wanted, %d found in %d-%d", n, len(out), lowest, hi-1)
		}
		port := lowest + (start+i)%span
		if given[port] {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			l.Close()
			continue
		}
		hold = append(hold, l, u)
		given[port] = true
		out = append(out, port)
	}
	return out, nil
}

// ephemeralLow returns the first port of the kernel's ephemeral range, or
// Linux's default where the range cannot be read.
func ephemeralLow() int {
	const fallback = 32768
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return fallback
	}
	lo, err := parseRange(string(b))
	if err != nil || lo <= lowest+1000 {
		return fallback
	}
	return lo
}

func parseRange(s string) (int, error) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return 0, errors.New("want two numbers")
	}
	return strconv.Atoi(f[0])
}
