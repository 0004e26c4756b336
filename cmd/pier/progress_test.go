package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestRenderProgress(t *testing.T) {
	for _, tc := range []struct {
		label       string
		done, total int64
		elapsed     time.Duration
		width       int
		want        string
	}{
		{"app.jar", 0, 2_000_000, 0, 60,
			"app.jar [            ]   0%       0 B / 2.0 MB     -- MB/s"},
		{"app.jar", 1_000_000, 2_000_000, time.Second, 80,
			"app.jar [===============>                ]  50%    1.0 MB / 2.0 MB    1.0 MB/s"},
		{"app.jar", 2_000_000, 2_000_000, 2 * time.Second, 60,
			"app.jar [============] 100%    2.0 MB / 2.0 MB    1.0 MB/s"},
		// Unknown total: no bar, no percentage.
		{"stream", 1_500_000, -1, 3 * time.Second, 80,
			"stream   1.5 MB    0.5 MB/s"},
		// Too narrow for a bar: it is dropped and the label shortened from
		// the front so the line still fits.
		{"team/very/long/name/app-1.2.3.jar", 500, 1000, time.Second, 50,
			"...-1.2.3.jar  50%     500 B / 1.0 kB    0.0 MB/s"},
		// Narrower still: a label cut to a few characters says nothing, so
		// it goes too.
		{"team/very/long/name/app-1.2.3.jar", 500, 1000, time.Second, 40,
			" 50%     500 B / 1.0 kB    0.0 MB/s"},
	} {
		got := renderProgress(tc.label, tc.done, tc.total, tc.elapsed, tc.width)
		if got != tc.want {
			t.Errorf("renderProgress(%q, %d, %d, %v, %d)\n got %q\nwant %q", tc.label, tc.done, tc.total, tc.elapsed, tc.width, got, tc.want)
		}
		if n := utf8.RuneCountInString(got); n > tc.width-1 {
			t.Errorf("line of %d runes does not fit width %d: %q", n, tc.width, got)
		}
	}
}

func TestRenderProgressNeverExceedsWidth(t *testing.T) {
	for width := 1; width < 120; width++ {
		for _, total := range []int64{-1, 10_000_000_000} {
			got := renderProgress("ünïcödé/label/that/is/long.tar.gz", 123_456_789, total, time.Minute, width)
			if n := utf8.RuneCountInString(got); n > max(width-1, 0) {
				t.Fatalf("width %d: %d runes: %q", width, n, got)
			}
		}
	}
}

// fakeClock advances only when told to, keeping the rate limiting testable
// without sleeping.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestProgressBarRateLimitsRedraws(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	var buf bytes.Buffer
	bar := newProgressBar(&buf, "x", 1000, 80, clock.now)

	bar.Set(100) // first update always draws
	for i := range 50 {
		bar.Set(int64(101 + i)) // same instant: suppressed
	}
	if n := strings.Count(buf.String(), "\r"); n != 1 {
		t.Fatalf("%d draws within one interval, want 1", n)
	}
	clock.t = clock.t.Add(progressInterval)
	bar.Set(500)
	if n := strings.Count(buf.String(), "\r"); n != 2 {
		t.Fatalf("%d draws after the interval, want 2", n)
	}
	if !strings.Contains(buf.String(), " 50%") {
		t.Fatalf("latest value not drawn: %q", buf.String())
	}

	clock.t = clock.t.Add(time.Millisecond)
	bar.Set(1000)
	bar.Finish() // draws the final state regardless of the interval
	out := buf.String()
	if !strings.HasSuffix(out, "\n") || !strings.Contains(out, "100%") {
		t.Fatalf("finish did not draw the final line: %q", out)
	}
	before := buf.Len()
	bar.Set(5)
	bar.Finish()
	bar.Clear()
	if buf.Len() != before {
		t.Fatal("bar drew after Finish")
	}
}

func TestProgressBarPadsShorterLines(t *testing.T) {
	clock := &fakeClock{t: time.Unix(0, 0)}
	var buf bytes.Buffer
	bar := newProgressBar(&buf, "x", -1, 80, clock.now)
	bar.Set(999_999_999)
	first := buf.String()
	buf.Reset()
	clock.t = clock.t.Add(time.Hour)
	bar.Set(1)
	second := buf.String()
	if utf8.RuneCountInString(second) != utf8.RuneCountInString(first) {
		t.Fatalf("shorter line not padded over the longer one: %q then %q", first, second)
	}
}

func TestProgressBarClearAndNil(t *testing.T) {
	var buf bytes.Buffer
	bar := newProgressBar(&buf, "x", 10, 80, (&fakeClock{}).now)
	bar.Set(5)
	drawn := buf.Len()
	bar.Clear()
	tail := buf.String()[drawn:]
	if !strings.HasPrefix(tail, "\r") || !strings.HasSuffix(tail, "\r") || strings.TrimSpace(tail) != "" || strings.Contains(tail, "\n") {
		t.Fatalf("clear wrote %q", tail)
	}

	// No writer (stderr not a terminal): a nil bar that ignores every call.
	var none *progressBar = newProgressBar(nil, "x", 10, 80, nil)
	if none != nil {
		t.Fatal("want nil bar without a writer")
	}
	none.Set(1)
	none.Finish()
	none.Clear()
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[int64]string{
		0: "0 B", 999: "999 B", 1000: "1.0 kB", 1_234_567: "1.2 MB",
		999_999: "1.0 MB", 5_000_000_000: "5.0 GB",
	} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
