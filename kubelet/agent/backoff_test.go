package agent

import (
	"math"
	"testing"
	"time"
)

func TestCrashLoopDelayDoublesUpToTheCapAndNeverOverflows(t *testing.T) {
	const base, maxDelay = 10 * time.Second, 300 * time.Second
	for _, tc := range []struct {
		restarts int
		want     time.Duration
	}{
		{-1, 0},
		{0, 0}, // the first restart is immediate
		{1, base},
		{2, 2 * base},
		{3, 4 * base},
		{5, 160 * time.Second},
		{6, maxDelay}, // 320 s capped
		{7, maxDelay},
		{31, maxDelay}, // 10s<<30 already overflows int32 nanoseconds
		{40, maxDelay}, // 10s<<39 wraps negative in int64
		{63, maxDelay},
		{64, maxDelay}, // a shift by ≥64 is zero
		{65, maxDelay},
		{1000, maxDelay},
		{math.MaxInt, maxDelay},
	} {
		if got := crashLoopDelay(tc.restarts, base, maxDelay); got != tc.want {
			t.Errorf("crashLoopDelay(%d, %v, %v) = %v, want %v", tc.restarts, base, maxDelay, got, tc.want)
		}
	}
}

func TestCrashLoopDelayEdges(t *testing.T) {
	for _, tc := range []struct {
		name           string
		restarts       int
		base, maxDelay time.Duration
		want           time.Duration
	}{
		{"fast test settings, once", 1, time.Millisecond, 50 * time.Millisecond, time.Millisecond},
		{"fast test settings, at the cap", 7, time.Millisecond, 50 * time.Millisecond, 50 * time.Millisecond},
		{"fast test settings, 100 restarts", 100, time.Millisecond, 50 * time.Millisecond, 50 * time.Millisecond},
		{"a nanosecond base wraps after 63 doublings", 64, 1, math.MaxInt64, math.MaxInt64},
		{"an unbounded cap still saturates", 1000, time.Second, math.MaxInt64, math.MaxInt64},
		{"just below an unbounded cap", 3, time.Duration(math.MaxInt64 / 4), math.MaxInt64, time.Duration(math.MaxInt64/4) * 4},
		{"base above the cap is the cap", 1, time.Hour, time.Minute, time.Minute},
		{"base equal to the cap", 50, time.Minute, time.Minute, time.Minute},
		{"no base", 5, 0, time.Minute, 0},
		{"no cap", 5, time.Second, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := crashLoopDelay(tc.restarts, tc.base, tc.maxDelay)
			if got != tc.want {
				t.Errorf("crashLoopDelay(%d, %v, %v) = %v, want %v", tc.restarts, tc.base, tc.maxDelay, got, tc.want)
			}
			if got < 0 || (tc.maxDelay > 0 && got > tc.maxDelay) {
				t.Errorf("delay %v outside [0, %v]", got, tc.maxDelay)
			}
		})
	}
}

func TestCrashLoopDelayIsMonotonicAndBounded(t *testing.T) {
	for _, base := range []time.Duration{1, time.Millisecond, 10 * time.Second} {
		for _, maxDelay := range []time.Duration{50 * time.Millisecond, 300 * time.Second, math.MaxInt64} {
			prev := time.Duration(0)
			for n := 0; n <= 200; n++ {
				d := crashLoopDelay(n, base, maxDelay)
				if d < prev || d > maxDelay {
					t.Fatalf("base %v max %v: restart %d waits %v after %v", base, maxDelay, n, d, prev)
				}
				prev = d
			}
		}
	}
}

func TestCrashLoopUntil(t *testing.T) {
	const base, maxDelay = 10 * time.Second, 300 * time.Second
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name         string
		restarts     int
		ran          time.Duration
		wantDelay    time.Duration
		wantRestarts int
	}{
		{"first exit restarts at once", 0, time.Second, 0, 0},
		{"second exit waits base", 1, time.Second, base, 1},
		{"many quick crashes wait the cap", 1000, time.Second, maxDelay, 1000},
		{"just under 2×max of running keeps the count", 40, 2*maxDelay - time.Nanosecond, maxDelay, 40},
		{"2×max of healthy running resets", 40, 2 * maxDelay, 0, 0},
		{"a day of running resets", 64, 24 * time.Hour, 0, 0},
		{"a clock step back keeps the count", 3, -time.Hour, 4 * base, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			finished := t0.Add(tc.ran)
			until, restarts := crashLoopUntil(tc.restarts, t0, finished, base, maxDelay)
			if got := until.Sub(finished); got != tc.wantDelay || restarts != tc.wantRestarts {
				t.Errorf("crashLoopUntil(%d, ran %v) = exit+%v with %d restarts, want exit+%v with %d", tc.restarts, tc.ran, got, restarts, tc.wantDelay, tc.wantRestarts)
			}
		})
	}
	// A tiny cap: a slow start is not healthy running.
	for _, tc := range []struct {
		ran   time.Duration
		reset bool
	}{{150 * time.Millisecond, false}, {5 * time.Second, false}, {minResetRun, true}} {
		if _, r := crashLoopUntil(100, t0, t0.Add(tc.ran), time.Millisecond, 50*time.Millisecond); (r == 0) != tc.reset {
			t.Errorf("cap 50ms, ran %v: restarts %d, want reset %v", tc.ran, r, tc.reset)
		}
	}
	// A huge cap: 2×max would overflow, and no run is long enough to reset.
	if _, r := crashLoopUntil(5, t0, t0.Add(1000*time.Hour), base, math.MaxInt64); r != 5 {
		t.Errorf("with an unbounded cap a long run reset the count to %d", r)
	}
}
