package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// With cgroups off, a grandchild that left the container's process group
// and session (setsid) dies with its pod.
func TestSetsidGrandchildDiesWithItsPodWithoutCgroups(t *testing.T) {
	c := startClusterWith(t, "NODES=1", "KUBELET_FLAGS=--disable-cgroups")
	pidFile := filepath.Join(t.TempDir(), "esc.pid")
	manifest := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: escaper}
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - name: main
    command: [sh, -c, "(setsid sh -c 'echo $$ > %[1]s.tmp; mv %[1]s.tmp %[1]s; exec sleep 1000' </dev/null >/dev/null 2>&1 &); exec sleep 1000"]
`, pidFile)
	c.applyText(t, manifest)
	var pid int
	waitFor(t, "the escaped grandchild to start", func() bool {
		b, err := os.ReadFile(pidFile)
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil && pid > 0
	})
	t.Cleanup(func() {
		if running(pid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	if sid := sessionOf(pid); sid != pid {
		t.Fatalf("the grandchild %d is not in a session of its own (sid %d): the test proves nothing", pid, sid)
	}
	// A true double fork: the subshell that started it has exited, so the
	// grandchild is an orphan reparented to the shim (its subreaper), out of
	// the main process's group and session.
	if parent := commOf(ppidOf(pid)); parent != "kubelet-shim" {
		t.Fatalf("the grandchild %d's parent is %q, want kubelet-shim (an orphan of the double fork)", pid, parent)
	}
	c.kubectl("delete", "pod", "escaper")
	waitFor(t, "the pod to be gone", func() bool {
		out, _ := c.run("bin/kubectl-lite", "get", "pod", "escaper")
		return strings.Contains(out, "not found") || strings.Contains(out, "NotFound")
	})
	waitFor(t, "the setsid'd grandchild to be gone", func() bool { return !running(pid) })
}

// sessionOf reads field 6 of /proc/<pid>/stat.
func sessionOf(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	sid, _ := strconv.Atoi(f[3])
	return sid
}

// A kubelet restarted (after kill -9) while a container runs, whose main
// process then exits 5 leaving many setsid'd children: the restarted
// kubelet reports 5, read from the shim's status once the shim has killed
// and reaped them all and drained the logs, not an invented 137.
func TestRestartedKubeletReportsTheExitAfterTheShimsWindDown(t *testing.T) {
	c := startClusterWith(t, "NODES=1", "KUBELET_FLAGS=--disable-cgroups")
	marks := t.TempDir()
	manifest := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: winddown}
spec:
  restartPolicy: Never
  containers:
  - name: main
    command: [sh, -c, "seq 300 | while read i; do setsid sleep 1000 </dev/null >/dev/null 2>&1 & done; echo $$ > %[1]s/pid.tmp; mv %[1]s/pid.tmp %[1]s/pid; while [ ! -f %[1]s/go ]; do sleep 0.05; done; exit 5"]
`, marks)
	c.applyText(t, manifest)
	var pid int
	waitFor(t, "the container to start its children", func() bool {
		b, err := os.ReadFile(filepath.Join(marks, "pid"))
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil && pid > 0
	})
	// A writer of the container's stdout outside its tree keeps the shim
	// draining for its 2 s after the children are dead: a long wind-down.
	out, err := os.OpenFile(fmt.Sprintf("/proc/%d/fd/1", pid), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	kb, err := os.ReadFile(filepath.Join(c.state, "pids", "kubelet-node-1.pid"))
	if err != nil {
		t.Fatal(err)
	}
	kpid := pidInFile(kb)
	if err := syscall.Kill(kpid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the kubelet to die", func() bool { return !running(kpid) })
	if out := c.must("scripts/up.sh"); !strings.Contains(out, "started kubelet-node-1") {
		t.Fatalf("up.sh did not restart the kubelet:\n%s", out)
	}
	// The restarted kubelet has adopted the container: let it end.
	waitFor(t, "the restarted kubelet to adopt the container", func() bool {
		b, _ := os.ReadFile(filepath.Join(c.state, "logs", "kubelet-node-1.log"))
		return strings.Count(string(b), "adopted running containers") == 1
	})
	if err := os.WriteFile(filepath.Join(marks, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var js string
	waitFor(t, "the pod to fail", func() bool {
		js, _ = c.run("bin/kubectl-lite", "get", "pod", "winddown", "-o", "json")
		return strings.Contains(js, `"phase": "Failed"`)
	})
	if !strings.Contains(js, `"exitCode": 5`) {
		t.Errorf("the restarted kubelet reported another exit than the main process's 5:\n%s", js)
	}
}

// ppidOf reads field 4 of /proc/<pid>/stat (counted after the last ')').
func ppidOf(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// commOf reads /proc/<pid>/comm.
func commOf(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(string(b))
}
