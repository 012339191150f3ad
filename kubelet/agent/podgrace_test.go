package agent

import (
	"math"
	"testing"
	"time"

	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

// Grace periods from stored objects saturate into durations: 9999999999 s
// times 1e9 overflows int64, which would make the grace negative (kill at
// once, no SIGTERM).
func TestPodGraceSaturates(t *testing.T) {
	i64 := func(n int64) *int64 { return &n }
	for _, tc := range []struct {
		name          string
		deletion, pod *int64
		want          time.Duration
	}{
		{"deletion grace 9999999999", i64(9999999999), i64(30), math.MaxInt64},
		{"pod grace 9999999999", nil, i64(9999999999), math.MaxInt64},
		{"deletion grace wins", i64(5), i64(9999999999), 5 * time.Second},
		{"max int32", i64(math.MaxInt32), nil, math.MaxInt32 * time.Second},
		{"zero", i64(0), i64(30), 0},
	} {
		p := &v1.Pod{Metadata: &v1.ObjectMeta{DeletionGracePeriodSeconds: tc.deletion}, Spec: &v1.PodSpec{TerminationGracePeriodSeconds: tc.pod}}
		if got := podGrace(p); got != tc.want {
			t.Errorf("%s: podGrace = %v, want %v", tc.name, got, tc.want)
		}
	}
}
