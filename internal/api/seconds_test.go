package api

import (
	"math"
	"testing"
	"time"
)

func TestSecondsSaturatesInsteadOfOverflowing(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   int64
		want time.Duration
	}{
		{"zero", 0, 0},
		{"one", 1, time.Second},
		{"a day", 86400, 24 * time.Hour},
		{"negative", -30, -30 * time.Second},
		{"the largest that fits", 9223372036, 9223372036 * time.Second},
		{"one past the largest", 9223372037, math.MaxInt64},
		{"activeDeadlineSeconds 9999999999", 9999999999, math.MaxInt64},
		{"MaxInt64", math.MaxInt64, math.MaxInt64},
		{"the smallest that fits", -9223372036, -9223372036 * time.Second},
		{"one below the smallest", -9223372037, math.MinInt64},
		{"MinInt64", math.MinInt64, math.MinInt64},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := SecondsToDuration(tc.in); got != tc.want {
				t.Errorf("SecondsToDuration(%d) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
	// A saturated deadline lies in the future, not the past.
	if now := time.Now(); !now.Add(SecondsToDuration(9999999999)).After(now) {
		t.Error("a deadline of 9999999999 s is not in the future")
	}
}
