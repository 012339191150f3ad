package runtime

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	shimOnce sync.Once
	shimPath string
	shimErr  error
)

// buildShim builds kubelet-shim once per test binary.
func buildShim(t *testing.T) string {
	t.Helper()
	shimOnce.Do(func() {
		dir, err := os.MkdirTemp("", "kubelet-shim-")
		if err != nil {
			shimErr = err
			return
		}
		shimPath = filepath.Join(dir, "kubelet-shim")
		out, err := exec.Command("go", "build", "-o", shimPath, "github.com/kubelite/kubelite/kubelet/shim").CombinedOutput()
		if err != nil {
			shimErr = err
			t.Logf("%s", out)
		}
	})
	if shimErr != nil {
		t.Fatalf("build kubelet-shim: %v", shimErr)
	}
	return shimPath
}

func newRuntime(t *testing.T, root string, cg *Cgroups) *Runtime {
	t.Helper()
	r, err := New(Config{Root: root, ShimPath: buildShim(t), Cgroups: cg})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Recover(); err != nil {
		t.Fatal(err)
	}
	return r
}

func waitExit(t *testing.T, c *Container) Exit {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(30 * time.Second):
		t.Fatalf("container %s did not exit", c.Name)
	}
	e, _ := c.Exited()
	return e
}

func waitFile(t *testing.T, path, want string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if strings.Contains(string(b), want) {
			return string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never contained %q; it has:\n%s", path, want, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func alive(pid int) bool { return procStartTime(pid) != 0 }

func TestExitCodeAndLogs(t *testing.T) {
	r := newRuntime(t, t.TempDir(), nil)
	c, err := r.Start(context.Background(), ContainerSpec{PodUID: "u1", Name: "c", Command: []string{"sh", "-c", "echo out; echo err >&2; exit 3"}, WorkingDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	e := waitExit(t, c)
	if e.Code != 3 || e.Signal != 0 {
		t.Errorf("exit = %+v, want code 3", e)
	}
	b, _ := os.ReadFile(c.LogPath)
	if !strings.Contains(string(b), " stdout F out\n") || !strings.Contains(string(b), " stderr F err\n") {
		t.Errorf("log lacks the CRI lines:\n%s", b)
	}
}

func TestStartErrorIsReportedNotFatal(t *testing.T) {
	r := newRuntime(t, t.TempDir(), nil)
	_, err := r.Start(context.Background(), ContainerSpec{PodUID: "u1", Name: "c", Command: []string{"/no/such/binary"}, WorkingDir: t.TempDir()})
	se, ok := err.(*StartError)
	if !ok || !strings.Contains(se.Msg, "/no/such/binary") || !strings.Contains(se.Msg, "no such file") {
		t.Fatalf("error = %v, want a StartError naming the binary and the OS error", err)
	}
	if n := len(r.Attempts("u1", "c")); n != 0 {
		t.Errorf("a failed start counts as %d attempts", n)
	}
}

func TestSIGTERMReachesTheProcessAndItsChildren(t *testing.T) {
	r := newRuntime(t, t.TempDir(), nil)
	dir := t.TempDir()
	// The parent waits for its child after SIGTERM, as a well-behaved main
	// process does; both must have received the signal from the group kill.
	// Each writes its pid once its trap is set.
	script := `trap 'echo parent-term >> terms; wait $child; exit 0' TERM
sh -c "trap 'echo child-term >> terms; exit 0' TERM; echo \$\$ > child.pid; while true; do sleep 0.05; done" &
child=$!
while true; do sleep 0.05; done`
	c, err := r.Start(context.Background(), ContainerSpec{PodUID: "u1", Name: "c", Command: []string{"sh", "-c", script}, WorkingDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	waitFile(t, filepath.Join(dir, "child.pid"), "")
	pidText := waitFile(t, filepath.Join(dir, "child.pid"), "\n")
	child, _ := strconv.Atoi(strings.TrimSpace(pidText))
	e := r.Stop(context.Background(), c, 20*time.Second)
	terms := waitFile(t, filepath.Join(dir, "terms"), "child-term")
	if !strings.Contains(terms, "parent-term") {
		t.Errorf("the main process did not get SIGTERM: %q", terms)
	}
	if e.Code != 0 {
		t.Errorf("exit = %+v, want 0 (the trap exits 0)", e)
	}
	if child > 0 && alive(child) {
		t.Errorf("child %d survives its container", child)
	}
}

func TestIgnoredSIGTERMIsFollowedBySIGKILLAfterTheGrace(t *testing.T) {
	r := newRuntime(t, t.TempDir(), nil)
	c, err := r.Start(context.Background(), ContainerSpec{PodUID: "u1", Name: "c", Command: []string{"sh", "-c", "trap '' TERM; echo ready; while true; do sleep 0.05; done"}, WorkingDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	waitFile(t, c.LogPath, "ready")
	grace := 1500 * time.Millisecond
	start := time.Now()
	e := r.Stop(context.Background(), c, grace)
	if took := time.Since(start); took < grace {
		t.Errorf("SIGKILL came after %v, before the %v grace period", took, grace)
	}
	if e.Signal != int(syscall.SIGKILL) || e.Code != 137 {
		t.Errorf("exit = %+v, want SIGKILL / 137", e)
	}
}

func TestRecoverAdoptsRunningAndKeepsExitCodes(t *testing.T) {
	root := t.TempDir()
	a := newRuntime(t, root, nil)
	run, err := a.Start(context.Background(), ContainerSpec{PodUID: "u1", Name: "runs", Command: []string{"sleep", "100"}, WorkingDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	quits, err := a.Start(context.Background(), ContainerSpec{PodUID: "u1", Name: "quits", Command: []string{"sh", "-c", "sleep 0.5; exit 7"}, WorkingDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	// A second runtime on the same folder, as a restarted kubelet.
	b := newRuntime(t, root, nil)
	got := b.Attempts("u1", "runs")
	if len(got) != 1 || got[0].Pid != run.Pid {
		t.Fatalf("after recovery: %d attempts, pid %v; want the same pid %d", len(got), got, run.Pid)
	}
	if _, done := got[0].Exited(); done {
		t.Fatal("a running container was recovered as exited")
	}
	q := b.Attempts("u1", "quits")
	if len(q) != 1 {
		t.Fatalf("quits has %d attempts", len(q))
	}
	if e := waitExit(t, q[0]); e.Code != 7 {
		t.Errorf("exit seen after recovery = %+v, want 7", e)
	}
	_ = quits
	e := b.Stop(context.Background(), got[0], time.Second)
	if e.Signal != int(syscall.SIGTERM) || e.Code != 143 {
		t.Errorf("stop of an adopted container = %+v, want SIGTERM / 143", e)
	}
	if err := b.RemovePod("u1"); err != nil {
		t.Fatal(err)
	}
}

func TestMemoryLimitIsOOMKilled(t *testing.T) {
	cg, reason := DetectCgroups("test-" + strconv.Itoa(os.Getpid()))
	if !cg.Limits() {
		t.Skipf("cgroup limits unavailable here: %s", reason)
	}
	r := newRuntime(t, t.TempDir(), cg)
	// Grows a shell variable until the 16 MiB limit kills it.
	c, err := r.Start(context.Background(), ContainerSpec{PodUID: "u-oom", Name: "hog", MemoryLimit: 16 << 20,
		Command: []string{"sh", "-c", `x=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa; while true; do x="$x$x"; done`}, WorkingDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	e := waitExit(t, c)
	if !e.OOMKilled || e.Code != 137 {
		t.Errorf("exit = %+v, want OOMKilled with 137", e)
	}
	if err := r.RemovePod("u-oom"); err != nil {
		t.Fatal(err)
	}
	os.Remove(cg.trackRoot)
	os.Remove(cg.memRoot)
	os.Remove(cg.cpuRoot)
}
