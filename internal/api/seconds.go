package api

import (
	"math"
	"time"
)

// SecondsToDuration turns a count of seconds from an API object (grace periods,
// activeDeadlineSeconds, probe timings, tolerationSeconds) into a
// Duration, saturating at the largest and smallest Duration instead of
// wrapping: 9999999999 seconds must mean "about forever", never a negative
// deadline that fires at once. Validation bounds these fields, but objects
// stored before it did are still read.
func SecondsToDuration(n int64) time.Duration {
	const limit = int64(math.MaxInt64 / int64(time.Second))
	switch {
	case n > limit:
		return time.Duration(math.MaxInt64)
	case n < -limit:
		return time.Duration(math.MinInt64)
	}
	return time.Duration(n) * time.Second
}
