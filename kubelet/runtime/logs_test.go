package runtime

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A full disk under the log folder: the workload neither blocks nor dies,
// the runtime learns of it while the container runs (not only from the
// final status), a log read ends with the error after the lines that were
// written, and a restarted kubelet still knows.
func TestFullLogDiskIsReportedNotSilent(t *testing.T) {
	root := t.TempDir()
	r := newRuntime(t, root, nil)
	logs := filepath.Join(root, "logs")
	if err := syscall.Mount("tmpfs", logs, "tmpfs", 0, "size=64k"); err != nil {
		t.Skipf("cannot mount a small tmpfs here (%v): the shim's sink tests cover ENOSPC", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(logs, syscall.MNT_DETACH) })
	dir := t.TempDir()
	c, err := r.Start(context.Background(), ContainerSpec{PodUID: "u-full", Name: "c", WorkingDir: dir,
		Command: []string{"sh", "-c", `i=0; while [ $i -lt 5000 ]; do echo "line $i with some padding to fill the disk"; i=$((i+1)); done; echo ok > wrote-all; exec sleep 1000`}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.RemovePod("u-full") })
	// The workload got through its writes (it did not block on the full disk).
	waitFile(t, filepath.Join(dir, "wrote-all"), "ok")
	deadline := time.Now().Add(20 * time.Second)
	for c.LogError() == "" {
		if time.Now().After(deadline) {
			t.Fatal("the runtime never learned that log writes fail")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, done := c.Exited(); done {
		t.Fatal("the container ended: it should run on with a full log disk")
	}
	if msg := c.LogError(); !strings.Contains(msg, "log write failed: no space left on device") {
		t.Errorf("LogError = %q, want it to say log write failed: no space left on device", msg)
	}
	e := r.Stop(context.Background(), c, 0)
	if e.Signal != int(syscall.SIGKILL) {
		t.Errorf("exit = %+v, want the SIGKILL of the stop (not SIGPIPE or an early death)", e)
	}
	var got strings.Builder
	err = ReadLog(context.Background(), c, LogOptions{}, func(b []byte) error { got.Write(b); return nil })
	if !errors.Is(err, ErrLogWrite) || !strings.Contains(err.Error(), "no space left on device") {
		t.Errorf("ReadLog error = %v, want ErrLogWrite naming the full disk", err)
	}
	if !strings.HasPrefix(got.String(), "line 0 with some padding") {
		t.Errorf("ReadLog did not send the lines that were written first: %.80q", got.String())
	}
	st, err := readStatus(c.dir)
	if err != nil || !strings.Contains(st.LogError, "no space left on device") || st.LogDroppedBytes == 0 {
		t.Errorf("status = %+v (%v), want the log error and the bytes dropped", st, err)
	}
	// A restarted kubelet reads it from the status.
	r2 := newRuntime(t, root, nil)
	if at := r2.Attempts("u-full", "c"); len(at) != 1 || !strings.Contains(at[0].LogError(), "no space left") {
		t.Errorf("after a restart the log error is lost: %v", at)
	}
}

// A restarted kubelet learns of failing log writes of a container it
// adopted, from the marker file the shim writes.
func TestLogErrorMarkerIsReadOnRecovery(t *testing.T) {
	root := t.TempDir()
	r := newRuntime(t, root, nil)
	c, err := r.Start(context.Background(), ContainerSpec{PodUID: "u-mark", Name: "c", WorkingDir: t.TempDir(), Command: []string{"sleep", "1000"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.RemovePod("u-mark") })
	if err := os.WriteFile(c.dir+".logerr.json", []byte(`{"error":"log write failed: no space left on device","droppedBytes":42}`), 0o644); err != nil {
		t.Fatal(err)
	}
	r2 := newRuntime(t, root, nil)
	at := r2.Attempts("u-mark", "c")
	if len(at) != 1 || at[0].LogError() != "log write failed: no space left on device (42 bytes of output dropped)" {
		t.Fatalf("adopted attempt's LogError = %v", at)
	}
}

// A shim that does not reopen its log in time (stopped, overloaded) must
// not end rotation for good: the renamed file goes back to the path, so
// the next rotation finds it and tries again.
func TestFailedReopenPutsTheLogBackForTheNextRotation(t *testing.T) {
	r := newRuntime(t, t.TempDir(), nil)
	c, err := r.Start(context.Background(), ContainerSpec{PodUID: "u-reopen", Name: "c", WorkingDir: t.TempDir(),
		Command: []string{"sh", "-c", "echo first; exec sleep 1000"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.RemovePod("u-reopen") })
	waitFile(t, c.LogPath, "first")
	old := reopenWait
	reopenWait = 300 * time.Millisecond
	t.Cleanup(func() { reopenWait = old })
	if err := syscall.Kill(c.shimPid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	err = r.RotateLog(c, 5)
	_ = syscall.Kill(c.shimPid, syscall.SIGCONT)
	if err == nil {
		t.Fatal("RotateLog succeeded though the shim was stopped")
	}
	if b, err := os.ReadFile(c.LogPath); err != nil || !strings.Contains(string(b), "first") {
		t.Fatalf("after the failed reopen the log path has %q (%v), want the log back", b, err)
	}
	if _, err := os.Stat(c.LogPath + ".1"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s.1 is still there (%v): the log was not put back", c.LogPath, err)
	}
	// The shim, running again, reopens the path (the same file) on the
	// pending signal; the next rotation works.
	reopenWait = old
	if err := r.RotateLog(c, 5); err != nil {
		t.Fatalf("the next rotation: %v", err)
	}
	if b, err := os.ReadFile(c.LogPath + ".1"); err != nil || !strings.Contains(string(b), "first") {
		t.Errorf("after the next rotation %s.1 has %q (%v)", c.LogPath, b, err)
	}
}
