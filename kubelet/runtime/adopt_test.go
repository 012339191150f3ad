package runtime

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// A restarted kubelet that adopted a container must report the main
// process's exit code even when the shim takes its time to wind down
// (killing many setsid'd descendants, draining the log pipes) before it
// writes the status: it waits for the status while the shim lives, and
// falls back to 137 only once the shim itself is gone.
func TestAdoptedExitWaitsForTheShimsStatus(t *testing.T) {
	root := t.TempDir()
	a := newRuntime(t, root, nil)
	dir := t.TempDir()
	const n = 300
	script := fmt.Sprintf(`i=0; while [ $i -lt %d ]; do setsid sleep 1000 </dev/null >/dev/null 2>&1 & i=$((i+1)); done
echo spawned > spawned; while [ ! -f go ]; do sleep 0.02; done; exit 5`, n)
	c, err := a.Start(context.Background(), ContainerSpec{PodUID: "u-adopt", Name: "c", WorkingDir: dir,
		Command: []string{"sh", "-c", script}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.RemovePod("u-adopt") })
	waitFile(t, filepath.Join(dir, "spawned"), "spawned")
	// A writer of the container's stdout outside its process tree (as one
	// passed over a socket would be) keeps the shim draining for its 2 s
	// after the descendants are dead: a long wind-down on any machine.
	out, err := os.OpenFile(fmt.Sprintf("/proc/%d/fd/1", c.Pid), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()

	// The kubelet restarts: a second runtime adopts the running container.
	b := newRuntime(t, root, nil)
	at := b.Attempts("u-adopt", "c")
	if len(at) != 1 {
		t.Fatalf("%d attempts adopted", len(at))
	}
	if _, done := at[0].Exited(); done {
		t.Fatal("the running container was recovered as exited")
	}
	if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	e := waitExit(t, at[0])
	if e.Code != 5 || e.Signal != 0 {
		t.Errorf("the restarted kubelet reports %+v, want the main process's exit code 5", e)
	}
	if e := waitExit(t, c); e.Code != 5 {
		t.Errorf("the first runtime reports %+v, want 5", e)
	}
}

// A container whose shim was killed (no status will ever come) is still
// reported, as 137, once the shim is gone.
func TestAdoptedContainerWithAKilledShimIsReported(t *testing.T) {
	root := t.TempDir()
	a := newRuntime(t, root, nil)
	c, err := a.Start(context.Background(), ContainerSpec{PodUID: "u-adopt2", Name: "c", WorkingDir: t.TempDir(),
		Command: []string{"sleep", "1000"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.RemovePod("u-adopt2") })
	b := newRuntime(t, root, nil)
	at := b.Attempts("u-adopt2", "c")
	if len(at) != 1 {
		t.Fatalf("%d attempts adopted", len(at))
	}
	_ = syscall.Kill(c.shimPid, syscall.SIGKILL)
	_ = syscall.Kill(-c.pgid, syscall.SIGKILL)
	select {
	case <-at[0].Done():
	case <-time.After(30 * time.Second):
		t.Fatal("an adopted container whose shim was killed is never reported")
	}
	if e, _ := at[0].Exited(); e.Code != 137 {
		t.Errorf("exit = %+v, want 137", e)
	}
}
