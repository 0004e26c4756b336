package main

import (
	"strings"
	"testing"
	"time"
)

const wrkClean = `Running 2s test @ http://127.0.0.1:33593/
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   620.44us    0.98ms  16.35ms   95.89%
    Req/Sec    52.46k     6.86k   63.76k    67.50%
  Latency Distribution
     50%  451.00us
     75%  681.00us
     90%    1.06ms
     99%    5.25ms
  208865 requests in 2.00s, 2.04GB read
Requests/sec: 104366.96
Transfer/sec:      1.02GB
BENCH non2xx=0 firstbad=0 requests=208865 p50us=451 p99us=5250
`

const wrkErrors = `Running 10s test @ http://127.0.0.1:37099/
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    17.01ms    4.04ms  34.76ms   75.05%
    Req/Sec   466.05     45.49   540.00     70.00%
  Latency Distribution
     50%   16.31ms
     75%   19.14ms
     90%   21.91ms
     99%    1.20s
  1861 requests in 10.01s, 0.88MB read
  Socket errors: connect 0, read 3, write 0, timeout 2
  Non-2xx or 3xx responses: 40
Requests/sec:    185.91
Transfer/sec:    449.10KB
BENCH non2xx=41 firstbad=503 requests=1861 p50us=16307 p99us=1200000
`

func TestParseWrk(t *testing.T) {
	r, err := parseWrk(wrkClean)
	if err != nil {
		t.Fatal(err)
	}
	if r.ReqPerSec != 104366.96 || r.Requests != 208865 || r.P50 != 451*time.Microsecond ||
		r.P99 != 5250*time.Microsecond || r.failed() != 0 {
		t.Errorf("clean: %+v", r)
	}

	r, err = parseWrk(wrkErrors)
	if err != nil {
		t.Fatal(err)
	}
	if r.P50 != 16310*time.Microsecond || r.P99 != 1200*time.Millisecond || r.Non2xx != 40 ||
		r.LuaNon2xx != 41 || r.FirstBad != 503 || r.SockErrs != 5 || r.failed() != 46 {
		t.Errorf("errors: %+v", r)
	}

	// Without --latency, or without the script's done(), nothing is reported.
	noDist := strings.Replace(wrkClean, "Latency Distribution", "", 1)
	if _, err := parseWrk(noDist); err == nil {
		t.Error("no latency distribution: no error")
	}
	noLua := strings.Replace(wrkClean, "BENCH ", "", 1)
	if _, err := parseWrk(noLua); err == nil {
		t.Error("no BENCH line: no error")
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"1G": 1 << 30, "64M": 64 << 20, "10K": 10 << 10, "512": 512, "1GiB": 1 << 30, "2gb": 2 << 30} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "G", "-1M", "1.5G", "x"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q): no error", in)
		}
	}
}
