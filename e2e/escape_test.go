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
    command: [sh, -c, "setsid sh -c 'echo $$ > %[1]s.tmp; mv %[1]s.tmp %[1]s; exec sleep 1000' </dev/null >/dev/null 2>&1 & exec sleep 1000"]
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
