package main

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// wrkResult is what one wrk run reported.
type wrkResult struct {
	ReqPerSec float64
	Requests  int64
	P50, P99  time.Duration // from the --latency distribution
	Non2xx    int64         // wrk's "Non-2xx or 3xx responses" line
	LuaNon2xx int64         // counted by the script's response hook
	FirstBad  int           // first non-2xx status the script saw
	SockErrs  int64         // connect + read + write + timeout
	SockLine  string        // wrk's "Socket errors" line, if any
	Raw       string
}

// failed is every failed request, however wrk or the script counted it.
func (r wrkResult) failed() int64 {
	bad := r.Non2xx
	if r.LuaNon2xx > bad {
		bad = r.LuaNon2xx
	}
	return bad + r.SockErrs
}

// runWrk runs wrk with a Lua script written to dir and returns its parsed
// output. The run is bounded by the duration plus a margin.
func runWrk(ctx context.Context, dir, scriptName string, threads, conns int, dur time.Duration, url string, args ...string) (wrkResult, error) {
	script := filepath.Join(dir, scriptName)
	src, err := luaFS.ReadFile("lua/" + scriptName)
	if err != nil {
		return wrkResult{}, err
	}
	if err := os.WriteFile(script, src, 0o644); err != nil {
		return wrkResult{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, dur+60*time.Second)
	defer cancel()
	argv := []string{
		"-t" + strconv.Itoa(threads), "-c" + strconv.Itoa(conns),
		"-d" + strconv.Itoa(int(dur.Seconds())) + "s", "--timeout", "5s", "--latency",
		"-s", script, url, "--"}
	argv = append(argv, args...)
	cmd := exec.CommandContext(ctx, "wrk", argv...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return wrkResult{Raw: string(out)}, fmt.Errorf("wrk %s: %w\n%s", strings.Join(argv, " "), err, out)
	}
	r, err := parseWrk(string(out))
	if err != nil {
		return r, fmt.Errorf("wrk %s: %w\n%s", url, err, out)
	}
	return r, nil
}

// parseWrk reads wrk 4's text report (with --latency) and the BENCH line
// the scripts print from done().
func parseWrk(out string) (wrkResult, error) {
	r := wrkResult{Raw: out}
	var haveRPS, haveP50, haveP99, haveLua bool
	inDist := false
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		f := strings.Fields(line)
		switch {
		case line == "Latency Distribution":
			inDist = true
		case inDist && len(f) == 2 && strings.HasSuffix(f[0], "%"):
			d, err := parseWrkDuration(f[1])
			if err != nil {
				return r, fmt.Errorf("latency %q: %w", line, err)
			}
			switch f[0] {
			case "50%":
				r.P50, haveP50 = d, true
			case "99%":
				r.P99, haveP99 = d, true
			}
		case strings.HasPrefix(line, "Requests/sec:") && len(f) == 2:
			inDist = false
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return r, fmt.Errorf("requests/sec %q: %w", line, err)
			}
			r.ReqPerSec, haveRPS = v, true
		case strings.HasPrefix(line, "Non-2xx or 3xx responses:") && len(f) == 5:
			inDist = false
			v, err := strconv.ParseInt(f[4], 10, 64)
			if err != nil {
				return r, fmt.Errorf("non-2xx %q: %w", line, err)
			}
			r.Non2xx = v
		case strings.HasPrefix(line, "Socket errors:"):
			inDist = false
			r.SockLine = line
			// Socket errors: connect 0, read 0, write 0, timeout 0
			for i := 2; i+1 < len(f); i += 2 {
				v, err := strconv.ParseInt(strings.TrimSuffix(f[i+1], ","), 10, 64)
				if err != nil {
					return r, fmt.Errorf("socket errors %q: %w", line, err)
				}
				r.SockErrs += v
			}
		case len(f) >= 4 && f[1] == "requests" && f[2] == "in":
			inDist = false
			// "123456 requests in 10.00s, 1.2GB read"
			v, err := strconv.ParseInt(f[0], 10, 64)
			if err == nil {
				r.Requests = v
			}
		case strings.HasPrefix(line, "BENCH "):
			haveLua = true
			for _, kv := range f[1:] {
				k, v, _ := strings.Cut(kv, "=")
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					return r, fmt.Errorf("BENCH line %q: %w", line, err)
				}
				switch k {
				case "non2xx":
					r.LuaNon2xx = n
				case "firstbad":
					r.FirstBad = int(n)
				}
			}
		default:
			if inDist && !strings.HasSuffix(f0(f), "%") {
				inDist = false
			}
		}
	}
	switch {
	case !haveRPS:
		return r, fmt.Errorf("no Requests/sec line")
	case !haveP50 || !haveP99:
		return r, fmt.Errorf("no 50%%/99%% latency lines (was --latency given?)")
	case !haveLua:
		return r, fmt.Errorf("no BENCH line from the script's done()")
	}
	return r, nil
}

func f0(f []string) string {
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// parseWrkDuration reads wrk's "612.00us", "1.23ms", "2.00s", "1.50m".
func parseWrkDuration(s string) (time.Duration, error) {
	units := []struct {
		suffix string
		d      time.Duration
	}{{"us", time.Microsecond}, {"ms", time.Millisecond}, {"s", time.Second}, {"m", time.Minute}, {"h", time.Hour}}
	for _, u := range units {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			x, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return 0, err
			}
			return time.Duration(math.Round(x * float64(u.d))), nil
		}
	}
	return 0, fmt.Errorf("unknown duration %q", s)
}
