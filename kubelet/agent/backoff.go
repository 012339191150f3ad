package agent

import "time"

// crashLoopDelay is CrashLoopBackOff's wait before the next start of a
// container that has already been restarted `restarts` times since its
// last reset: none for the first restart, then base, 2×base, 4×base, …
// capped at maxDelay. Doubling stops at the cap, so no restart count —
// 31, 64 or a million — can overflow the shift into a negative or zero
// delay (which restarted the container in a hot loop).
func crashLoopDelay(restarts int, base, maxDelay time.Duration) time.Duration {
	if restarts <= 0 || base <= 0 || maxDelay <= 0 {
		return 0
	}
	d := min(base, maxDelay)
	for i := 1; i < restarts && d < maxDelay; i++ {
		if d > maxDelay/2 {
			return maxDelay
		}
		d *= 2
	}
	return d
}

// minResetRun is the least running time that can reset the back-off,
// however small the cap: with a cap of 50 ms, a start slowed down by a
// busy machine must not count as 100 ms of healthy running.
const minResetRun = 10 * time.Second

// crashLoopReset says whether an attempt ran long enough that its exit
// starts a fresh back-off: twice the longest delay of healthy running (at
// least minResetRun), as client-go's flowcontrol.Backoff forgets an entry
// idle for 2×max (Kubernetes: 10 min with the 5 min cap).
func crashLoopReset(startedAt, finishedAt time.Time, maxDelay time.Duration) bool {
	ran := finishedAt.Sub(startedAt)
	return ran >= minResetRun && ran >= maxDelay && ran-maxDelay >= maxDelay // 2×maxDelay without overflowing it
}

// crashLoopUntil is when a container that exited at finishedAt, after
// running since startedAt, may start again, and the restart count that
// delay was computed from (zero after a reset).
func crashLoopUntil(restarts int, startedAt, finishedAt time.Time, base, maxDelay time.Duration) (time.Time, int) {
	if crashLoopReset(startedAt, finishedAt, maxDelay) {
		restarts = 0
	}
	return finishedAt.Add(crashLoopDelay(restarts, base, maxDelay)), restarts
}
