package raftnet

import (
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/pier-registry/pier/transport/clustertls"
)

func newTransport(t *testing.T, id string) *Transport {
	t.Helper()
	creds, err := clustertls.New(id, "test-cluster-key")
	if err != nil {
		t.Fatal(err)
	}
	tr, err := New("127.0.0.1:0", "", 10*time.Second, creds, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// answer serves appends on tr, failing the ones fail picks, until the test
// ends.
func answer(t *testing.T, tr *Transport, fail func(n int) bool) {
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	go func() {
		for n := 1; ; n++ {
			select {
			case rpc := <-tr.Consumer():
				rpc.Respond(&raft.AppendEntriesResponse{Term: 1, Success: !fail(n)}, nil)
			case <-stop:
				return
			}
		}
	}()
}

func appendReq() *raft.AppendEntriesRequest {
	return &raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax}, Term: 1}
}

// TestAPipelineIsClosedWhenRaftStopsReadingIt plays raft's two pipeline
// goroutines against a follower that refuses its second append: a decoder
// that returns at the first failed response, as raft's does, and a sender
// that goes on sending without looking, as raft's may for a turn of its
// loop. Unguarded, that sender parks for good (raft/net_transport.go sizes
// the pipeline's channels at MaxRPCsInFlight-2, unbuffered by default).
func TestAPipelineIsClosedWhenRaftStopsReadingIt(t *testing.T) {
	leader, follower := newTransport(t, "leader"), newTransport(t, "follower")
	answer(t, follower, func(n int) bool { return n == 2 })

	p, err := leader.AppendEntriesPipeline("follower", follower.LocalAddr())
	if err != nil {
		t.Fatal(err)
	}
	decoded := make(chan int, 1)
	go func() {
		for n := 1; ; n++ {
			if f := <-p.Consumer(); !f.Response().Success {
				decoded <- n
				return
			}
		}
	}()
	const sends = 20
	sent := make(chan error, 1)
	go func() {
		for i := 0; i < sends; i++ {
			if _, err := p.AppendEntries(appendReq(), &raft.AppendEntriesResponse{}); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()

	select {
	case err := <-sent:
		if err == nil {
			t.Fatalf("all %d appends went through a pipeline whose follower refused the second", sends)
		}
		if !errors.Is(err, raft.ErrPipelineShutdown) {
			t.Logf("sender stopped with %v", err) // a send on the closed connection fails first
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the sender is still parked 20 s after the decoder stopped: the pipeline was not closed")
	}
	if n := <-decoded; n != 2 {
		t.Fatalf("the decoder stopped at response %d, want 2 (a successful response must not end the pipeline)", n)
	}
}

// TestAHealthyPipelineStaysOpen checks that the guard hands on every
// successful response and closes nothing.
func TestAHealthyPipelineStaysOpen(t *testing.T) {
	leader, follower := newTransport(t, "leader"), newTransport(t, "follower")
	answer(t, follower, func(int) bool { return false })

	p, err := leader.AppendEntriesPipeline("follower", follower.LocalAddr())
	if err != nil {
		t.Fatal(err)
	}
	const sends = 50
	got := make(chan error, 1)
	go func() {
		for i := 0; i < sends; i++ {
			f := <-p.Consumer()
			if err := f.Error(); err != nil || !f.Response().Success {
				got <- errors.Join(err, errors.New("a response failed"))
				return
			}
		}
		got <- nil
	}()
	for i := 0; i < sends; i++ {
		if _, err := p.AppendEntries(appendReq(), &raft.AppendEntriesResponse{}); err != nil {
			t.Fatalf("append %d: %v", i+1, err)
		}
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("not all %d responses arrived within 20 s", sends)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.AppendEntries(appendReq(), &raft.AppendEntriesResponse{}); err == nil {
		t.Fatal("an append went through a closed pipeline")
	}
}
