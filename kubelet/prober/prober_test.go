package prober

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

func TestLimitedBufferKeepsTheFirstBytesAndAcceptsEverything(t *testing.T) {
	b := &limitedBuffer{limit: 10}
	for _, w := range []string{"abc", "defghij", "klm", ""} {
		if n, err := b.Write([]byte(w)); n != len(w) || err != nil {
			t.Fatalf("Write(%q) = %d, %v; want %d, nil", w, n, err, len(w))
		}
	}
	if got := b.String(); got != "abcdefghij" {
		t.Errorf("kept %q, want the first 10 bytes", got)
	}
}

// An exec probe that prints 64 MiB: the kubelet keeps at most 10 KiB of
// it (the message of the Unhealthy event) and never holds the rest.
func TestExecProbeOutputIsBounded(t *testing.T) {
	const printed = 64 << 20
	for _, tc := range []struct {
		name   string
		script string
		ok     bool
	}{
		{"failing", "head -c 67108864 /dev/zero | tr '\\0' x; exit 1", false},
		{"succeeding", "head -c 67108864 /dev/zero | tr '\\0' x; exit 0", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			ok, msg := Action(context.Background(), Target{WorkingDir: t.TempDir()},
				&v1.ExecAction{Command: []string{"sh", "-c", tc.script}}, nil, nil, time.Minute)
			runtime.ReadMemStats(&after)
			if ok != tc.ok {
				t.Fatalf("probe ok = %v, want %v (message %.80q)", ok, tc.ok, msg)
			}
			if len(msg) > maxExecOutput {
				t.Errorf("the message keeps %d bytes of output, want at most %d", len(msg), maxExecOutput)
			}
			if !tc.ok && (len(msg) < 1000 || strings.Trim(msg, "x") != "") {
				t.Errorf("the message is not the start of the output: %d bytes, %.40q", len(msg), msg)
			}
			allocated := after.TotalAlloc - before.TotalAlloc
			t.Logf("%d MiB printed, %d KiB allocated by the probe", printed>>20, allocated>>10)
			if allocated > 8<<20 {
				t.Errorf("running the probe allocated %d MiB for %d MiB of output", allocated>>20, printed>>20)
			}
		})
	}
}
