package agent

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/kubelite/kubelite/kubelet/runtime"
	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

// logStream is a ContainerLogs stream that records what is sent.
type logStream struct {
	grpc.ServerStream
	ctx    context.Context
	mu     sync.Mutex
	data   bytes.Buffer
	sends  int
	maxLen int
}

func (s *logStream) Context() context.Context { return s.ctx }

func (s *logStream) Send(c *v1.LogChunk) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data.Write(c.Data)
	s.sends++
	s.maxLen = max(s.maxLen, len(c.Data))
	return nil
}

func (s *logStream) snapshot() (string, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.data.String(), s.maxLen
}

// newLogTestRuntime is a runtime without cgroups whose shim was built by
// TestMain (on PATH).
func newLogTestRuntime(t *testing.T) *runtime.Runtime {
	t.Helper()
	shim, err := exec.LookPath("kubelet-shim")
	if err != nil {
		t.Fatalf("kubelet-shim is not on PATH (TestMain builds it): %v", err)
	}
	rt, err := runtime.New(runtime.Config{Root: t.TempDir(), ShimPath: shim})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rt.Recover(); err != nil {
		t.Fatal(err)
	}
	return rt
}

func followLogs(t *testing.T, rt *runtime.Runtime, uid string) (*logStream, <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s := &logStream{ctx: ctx}
	done := make(chan error, 1)
	srv := &logServer{k: &Kubelet{rt: rt}}
	go func() {
		done <- srv.ContainerLogs(&v1.ContainerLogRequest{PodUid: uid, Container: "c", Follow: true}, s)
	}()
	return s, done
}

// `logs -f` while the log is rotated again and again under a fast writer:
// every line is seen exactly once, in order.
func TestLogsFollowSurvivesRotation(t *testing.T) {
	rt := newLogTestRuntime(t)
	const n = 50000
	c, err := rt.Start(context.Background(), runtime.ContainerSpec{PodUID: "u-rot", Name: "c", WorkingDir: t.TempDir(),
		Command: []string{"sh", "-c", fmt.Sprintf(`i=0; while [ $i -lt %d ]; do echo "line $i"; i=$((i+1)); [ $((i %% 1000)) = 0 ] && sleep 0.01; done`, n)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.RemovePod("u-rot") })
	s, done := followLogs(t, rt, "u-rot")
	// logs -f starts at the live file, as Kubernetes' does: rotations start
	// once the follower has it.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Millisecond) {
		if out, _ := s.snapshot(); out != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("logs -f sent nothing")
		}
	}
	rotations := 0
	for {
		if _, exited := c.Exited(); exited {
			break
		}
		// Enough files are kept that none is dropped before the follower
		// (polling every 100 ms) has read it: retention is not under test.
		if err := rt.RotateLog(c, 1000); err != nil {
			t.Fatalf("rotate: %v", err)
		}
		rotations++
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("logs -f: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("logs -f did not end after the container did")
	}
	out, _ := s.snapshot()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	t.Logf("%d rotations while %d lines were written", rotations, n)
	if rotations < 3 {
		t.Logf("only %d rotations happened during the writes (a fast machine): the check is weak", rotations)
	}
	next := 0
	for _, l := range lines {
		v, err := strconv.Atoi(strings.TrimPrefix(l, "line "))
		if err != nil || v != next {
			files, _ := filepath.Glob(c.LogPath + "*")
			for _, f := range files {
				b, _ := os.ReadFile(f)
				ls := strings.Split(string(b), "\n")
				t.Logf("%s: %d lines, first %q, last %q, has the missing line: %v", f, len(ls), ls[0], ls[max(0, len(ls)-2)], strings.Contains(string(b), fmt.Sprintf(" line %d\n", next)))
			}
			t.Fatalf("after line %d came %q (want %q): a line was lost, doubled or reordered", next-1, l, "line "+strconv.Itoa(next))
		}
		next++
	}
	if next != n {
		t.Fatalf("saw %d lines, want %d", next, n)
	}
}

// A line without a newline is passed on in pieces as it comes: neither the
// shim nor the log reader holds it whole.
func TestLogsHugeLineIsNotBuffered(t *testing.T) {
	rt := newLogTestRuntime(t)
	const size = 1 << 20
	c, err := rt.Start(context.Background(), runtime.ContainerSpec{PodUID: "u-huge", Name: "c", WorkingDir: t.TempDir(),
		Command: []string{"sh", "-c", fmt.Sprintf(`head -c %d /dev/zero | tr '\0' a; exec sleep 1000`, size)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.RemovePod("u-huge") })
	s, _ := followLogs(t, rt, "u-huge")
	// The line never ends (no newline, the writer sleeps): all but the
	// last, unfinished 16 KiB entry must still arrive.
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, maxLen := s.snapshot()
		if len(out) >= size-16<<10 {
			if strings.Trim(out, "a") != "" {
				t.Fatalf("the output has more than the line's bytes: %q...", out[:min(len(out), 80)])
			}
			if maxLen > 64<<10 {
				t.Errorf("one send carried %d bytes: the reader buffers", maxLen)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d bytes of an unfinished line arrived: it is being buffered", len(out), size)
		}
		time.Sleep(20 * time.Millisecond)
	}
	rt.Stop(context.Background(), c, 0)
}
