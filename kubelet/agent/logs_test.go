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
// every line is seen exactly once, in order. The writer runs until at least
// 3 rotations have moved a file with lines in it, so the test cannot pass
// without rotating.
func TestLogsFollowSurvivesRotation(t *testing.T) {
	rt := newLogTestRuntime(t)
	const minRotations = 3
	dir := t.TempDir()
	c, err := rt.Start(context.Background(), runtime.ContainerSpec{PodUID: "u-rot", Name: "c", WorkingDir: dir,
		Command: []string{"sh", "-c", `i=0; while :; do echo "line $i"; i=$((i+1)); if [ $((i % 1000)) = 0 ]; then [ -f stop ] && break; sleep 0.01; fi; done; echo "total $i"`}})
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
	stopped := false
	for deadline := time.Now().Add(120 * time.Second); ; {
		if _, exited := c.Exited(); exited {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d rotations in 120 s", rotations)
		}
		// Enough files are kept that none is dropped before the follower
		// (polling every 100 ms) has read it: retention is not under test.
		if err := rt.RotateLog(c, 1000); err != nil {
			t.Fatalf("rotate: %v", err)
		}
		// A rotation counts once the renamed file holds lines.
		if st, err := os.Stat(c.LogPath + ".1"); err == nil && st.Size() > 0 && !stopped {
			rotations++
		}
		if rotations >= minRotations && !stopped {
			if err := os.WriteFile(filepath.Join(dir, "stop"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			stopped = true
		}
		time.Sleep(5 * time.Millisecond)
	}
	if rotations < minRotations {
		t.Fatalf("the container ended after %d rotations, want at least %d", rotations, minRotations)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("logs -f: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("logs -f did not end after the container did")
	}
	files, _ := filepath.Glob(c.LogPath + ".*")
	if len(files) < minRotations {
		t.Errorf("%d rotated files, want at least %d", len(files), minRotations)
	}
	out, _ := s.snapshot()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	t.Logf("%d rotations (%d rotated files) while %d lines were written", rotations, len(files), len(lines)-1)
	next := 0
	for i, l := range lines {
		if i == len(lines)-1 {
			if l != "total "+strconv.Itoa(next) {
				t.Fatalf("the last line is %q, want %q", l, "total "+strconv.Itoa(next))
			}
			break
		}
		v, err := strconv.Atoi(strings.TrimPrefix(l, "line "))
		if err != nil || v != next {
			all, _ := filepath.Glob(c.LogPath + "*")
			for _, f := range all {
				b, _ := os.ReadFile(f)
				ls := strings.Split(string(b), "\n")
				t.Logf("%s: %d lines, first %q, last %q, has the missing line: %v", f, len(ls), ls[0], ls[max(0, len(ls)-2)], strings.Contains(string(b), fmt.Sprintf(" line %d\n", next)))
			}
			t.Fatalf("after line %d came %q (want %q): a line was lost, doubled or reordered", next-1, l, "line "+strconv.Itoa(next))
		}
		next++
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
