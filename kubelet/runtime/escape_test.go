package runtime

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// escapee is a shell line that starts a grandchild in a session of its own
// (out of the container's process group), which writes its pid to esc.pid.
const escapee = `setsid sh -c 'echo $$ > esc.pid.tmp; mv esc.pid.tmp esc.pid; exec sleep 1000' </dev/null >/dev/null 2>&1 &`

func escapeePid(t *testing.T, dir string) int {
	t.Helper()
	text := waitFile(t, filepath.Join(dir, "esc.pid"), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(text))
	if err != nil || pid <= 0 {
		t.Fatalf("esc.pid = %q", text)
	}
	return pid
}

func waitGone(t *testing.T, pid int, what string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("%s (pid %d) outlives its container", what, pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// With no cgroups (compose, non-root, --disable-cgroups), a setsid'd
// grandchild must still die with its container when the main process exits,
// and the main process's exit code is the one reported.
func TestEscapedGrandchildDiesWhenTheMainProcessExits(t *testing.T) {
	r := newRuntime(t, t.TempDir(), nil)
	dir := t.TempDir()
	c, err := r.Start(context.Background(), ContainerSpec{PodUID: "u-esc", Name: "c",
		Command: []string{"sh", "-c", escapee + ` while [ ! -f esc.pid ]; do sleep 0.02; done; exit 5`}, WorkingDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	pid := escapeePid(t, dir)
	t.Cleanup(func() { killPid(pid) })
	e := waitExit(t, c)
	if e.Code != 5 || e.Signal != 0 {
		t.Errorf("exit = %+v, want the main process's code 5", e)
	}
	// The shim reports the exit only after every descendant is reaped.
	if alive(pid) {
		t.Errorf("the escaped grandchild %d still runs when the exit is reported", pid)
	}
	waitGone(t, pid, "escaped grandchild")
	if err := r.RemovePod("u-esc"); err != nil {
		t.Fatal(err)
	}
}

// A pod delete (RemovePod: SIGKILL to the group) kills the escapee too,
// while the main process was still running.
func TestEscapedGrandchildDiesWithItsPod(t *testing.T) {
	t.Run("without cgroups", func(t *testing.T) { testEscapedGrandchildDiesWithItsPod(t, nil) })
	t.Run("with cgroups", func(t *testing.T) {
		cg, reason := DetectCgroups("test-esc-" + strconv.Itoa(os.Getpid()))
		if !cg.Tracking() {
			t.Skipf("no tracking cgroup here: %s", reason)
		}
		t.Cleanup(func() {
			for _, d := range []string{cg.trackRoot, cg.memRoot, cg.cpuRoot} {
				if d != "" {
					os.Remove(d)
				}
			}
		})
		testEscapedGrandchildDiesWithItsPod(t, cg)
	})
}

func testEscapedGrandchildDiesWithItsPod(t *testing.T, cg *Cgroups) {
	r := newRuntime(t, t.TempDir(), cg)
	dir := t.TempDir()
	c, err := r.Start(context.Background(), ContainerSpec{PodUID: "u-esc2", Name: "c",
		Command: []string{"sh", "-c", escapee + ` exec sleep 1000`}, WorkingDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	pid := escapeePid(t, dir)
	t.Cleanup(func() { killPid(pid) })
	e := r.Stop(context.Background(), c, time.Second)
	if e.Signal != 15 || e.Code != 143 {
		t.Errorf("exit = %+v, want SIGTERM / 143 (the main process's)", e)
	}
	if alive(pid) {
		t.Errorf("the escaped grandchild %d still runs after the stop", pid)
	}
	if err := r.RemovePod("u-esc2"); err != nil {
		t.Fatal(err)
	}
	waitGone(t, pid, "escaped grandchild")
}

// killPid cleans up after a failed test: never leave a sleep 1000 behind.
func killPid(pid int) {
	if alive(pid) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}
