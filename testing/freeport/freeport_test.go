package freeport

import (
	"fmt"
	"net"
	"testing"
)

func TestPortsAreBelowTheEphemeralRangeDistinctAndBindable(t *testing.T) {
	hi := ephemeralLow()
	seen := map[int]bool{}
	for range 3 {
		ports, err := Ports(20)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ports {
			if p < lowest || p >= hi {
				t.Fatalf("port %d outside %d-%d", p, lowest, hi-1)
			}
			if seen[p] {
				t.Fatalf("port %d handed out twice", p)
			}
			seen[p] = true
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				t.Fatalf("port %d not bindable after Ports released it: %v", p, err)
			}
			l.Close()
		}
	}
}

func TestPortsSkipsAPortTakenForTCPOrUDP(t *testing.T) {
	// Hold every port but a few of a small window open; Ports must skip
	// them however often it draws them. The window is taken as a range
	// below the ephemeral one, so this test narrows what Ports may pick
	// by marking the rest given.
	mu.Lock()
	saved := given
	given = map[int]bool{}
	hi := ephemeralLow()
	free := []int{}
	for p := lowest; p < hi; p++ {
		given[p] = true
	}
	var held []net.Listener
	for p := lowest + 100; p < hi && len(free) < 3; p++ {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		if len(held) < 2 {
			held = append(held, l) // taken for TCP: must be skipped
		} else {
			l.Close()
			free = append(free, p)
		}
		delete(given, p)
	}
	mu.Unlock()
	defer func() {
		for _, l := range held {
			l.Close()
		}
		mu.Lock()
		given = saved
		mu.Unlock()
	}()
	ports, err := Ports(len(free))
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]bool{}
	for _, p := range free {
		want[p] = true
	}
	for _, p := range ports {
		if !want[p] {
			t.Fatalf("got port %d, held open by the test; free were %v", p, free)
		}
	}
	if _, err := Ports(1); err == nil {
		t.Fatal("Ports found a port when none was left")
	}
}

func TestParseRange(t *testing.T) {
	if lo, err := parseRange("32768\t60999\n"); err != nil || lo != 32768 {
		t.Fatalf("parseRange: %d %v", lo, err)
	}
	if _, err := parseRange("garbage"); err == nil {
		t.Fatal("parseRange accepted garbage")
	}
}
