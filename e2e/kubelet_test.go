package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubelite/kubelite/internal/client"
)

// An apiserver outage exactly during the kubelet's final delete: the kubelet
// retries it, and the pod leaves etcd once the apiserver is back, with the
// same kubelet process.
func TestFinalDeleteSurvivesAnAPIServerOutage(t *testing.T) {
	c := startClusterWith(t, "NODES=1")
	cl := c.apiClient()
	marks := t.TempDir()
	// On SIGTERM the process notes it, then waits (grace 60 s) until the
	// test has killed the apiserver and says go: the kubelet's final status
	// write and delete both meet a dead apiserver, however slow the machine.
	c.applyText(t, fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: slowstop}
spec:
  nodeName: node-1
  terminationGracePeriodSeconds: 60
  containers:
  - name: main
    command: [sh, -c, "trap 'touch %[1]s/term; while [ ! -e %[1]s/go ]; do sleep 0.1; done; exit 0' TERM; echo $$ > %[1]s/pid; while true; do sleep 0.1; done"]
`, marks))
	waitFor(t, "slowstop to run", func() bool {
		p, err := cl.Pods().Get(tctx(t), "default", "slowstop")
		return err == nil && p.GetStatus().GetPhase() == "Running"
	})
	pid := readPidFile(t, filepath.Join(marks, "pid"))
	kubelet := c.pidOf("kubelet-node-1")

	c.kubectl("delete", "pod", "slowstop", "--wait=false")
	waitFor(t, "the kubelet to send SIGTERM", func() bool {
		_, err := os.Stat(filepath.Join(marks, "term"))
		return err == nil
	})
	apiserver := c.pidOf("apiserver")
	if err := syscall.Kill(apiserver, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the apiserver to die", func() bool { return !running(apiserver) })
	if err := os.WriteFile(filepath.Join(marks, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the container to exit", func() bool { return !running(pid) })
	kubeletLog := filepath.Join(c.state, "logs", "kubelet-node-1.log")
	waitFor(t, "the kubelet's final delete to fail", func() bool {
		b, _ := os.ReadFile(kubeletLog)
		return strings.Contains(string(b), "cannot delete the pod after stopping it")
	})

	// up.sh restarts the apiserver on the same port and data folder.
	if out := c.must("scripts/up.sh"); !strings.Contains(out, "started apiserver") {
		t.Fatalf("up.sh did not restart the apiserver:\n%s", out)
	}
	back := time.Now()
	waitFor(t, "slowstop to leave the API", func() bool {
		_, err := cl.Pods().Get(tctx(t), "default", "slowstop")
		return client.IsNotFound(err)
	})
	t.Logf("pod gone %v after the apiserver came back", time.Since(back).Round(10*time.Millisecond))
	if keys := c.must("bin/etcdctl-lite", "get", "--prefix", "--keys-only", "/registry/pods/default/slowstop"); strings.TrimSpace(keys) != "" {
		t.Errorf("the pod's key is still in etcd:\n%s", keys)
	}
	if got := c.pidOf("kubelet-node-1"); got != kubelet || !running(kubelet) {
		t.Errorf("the kubelet was restarted (pid %d, was %d)", got, kubelet)
	}
}

// A crash-looping container with a 1 ms base and a 50 ms cap goes through
// 100 restarts, and once the back-off has reached the cap no two starts are
// closer than the cap: the delay never overflows into a hot loop.
func TestCrashLoopBackOffNeverRestartsFasterThanTheCap(t *testing.T) {
	const backOffMax = 50 * time.Millisecond
	c := startClusterWith(t, "NODES=1", "KUBELET_FLAGS=--backoff-base=1ms --backoff-max="+backOffMax.String())
	cl := c.apiClient()
	marks := t.TempDir()
	starts := filepath.Join(marks, "starts")
	c.applyText(t, fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: crashloop}
spec:
  nodeName: node-1
  restartPolicy: Always
  containers:
  - name: main
    command: [sh, -c, "date +%%s%%N >> %s; exit 1"]
`, starts))
	const restarts = 100
	var times []time.Time
	deadline := time.Now().Add(5 * time.Minute)
	for len(times) < restarts+1 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d starts within 5 minutes", len(times))
		}
		time.Sleep(200 * time.Millisecond)
		times = readStartTimes(t, starts)
	}
	// Start n+1 comes after exit n plus the delay, and exit n after start n.
	// Delays: 0 (first restart), 1, 2, 4, 8, 16, 32 ms, then the cap.
	const slack = 5 * time.Millisecond
	shortest, capReached := time.Duration(1<<62), 7
	for i := capReached; i+1 < len(times); i++ {
		gap := times[i+1].Sub(times[i])
		shortest = min(shortest, gap)
		if gap < backOffMax-slack {
			t.Errorf("restart %d came %v after start %d, under the %v cap", i+1, gap, i, backOffMax)
		}
	}
	t.Logf("%d starts in %v; shortest gap between starts at the cap %v", len(times), times[len(times)-1].Sub(times[0]).Round(time.Millisecond), shortest)

	// The kubelet's own record of each attempt (the shim's state files):
	// from one exit to the next start is at least the delay, so once at
	// the cap no restart may follow its exit sooner than the cap.
	p, err := cl.Pods().Get(tctx(t), "default", "crashloop")
	if err != nil {
		t.Fatal(err)
	}
	stateDir := filepath.Join(c.state, "kubelet-node-1", "state")
	attempt := func(n int, file, field string) time.Time {
		path := filepath.Join(stateDir, fmt.Sprintf("%s_main_%d.%s.json", p.Metadata.Uid, n, file))
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("the kubelet's record of attempt %d: %v", n, err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		at, err := time.Parse(time.RFC3339Nano, fmt.Sprint(m[field]))
		if err != nil {
			t.Fatalf("%s: %s: %v", path, field, err)
		}
		return at
	}
	shortest = time.Duration(1 << 62)
	for n := capReached; n < restarts; n++ {
		gap := attempt(n+1, "state", "startedAt").Sub(attempt(n, "status", "finishedAt"))
		shortest = min(shortest, gap)
		if gap < backOffMax-slack {
			t.Errorf("attempt %d started %v after attempt %d exited, under the %v cap", n+1, gap, n, backOffMax)
		}
	}
	t.Logf("shortest time from an exit to the next start at the cap: %v", shortest)
	waitFor(t, "the pod to report the restarts, still Running", func() bool {
		p, err := cl.Pods().Get(tctx(t), "default", "crashloop")
		return err == nil && p.GetStatus().GetPhase() == "Running" && len(p.Status.ContainerStatuses) == 1 &&
			p.Status.ContainerStatuses[0].RestartCount >= restarts
	})
	c.kubectl("delete", "pod", "crashloop")
}

func readPidFile(t *testing.T, path string) int {
	t.Helper()
	var pid int
	waitFor(t, "a pid in "+path, func() bool {
		b, _ := os.ReadFile(path)
		var err error
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	})
	return pid
}

// readStartTimes reads one Unix time in nanoseconds per line; a last line
// still being written is left for the next read.
func readStartTimes(t *testing.T, path string) []time.Time {
	t.Helper()
	b, _ := os.ReadFile(path)
	var out []time.Time
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if !strings.HasSuffix(line, "\n") {
			break
		}
		ns, err := strconv.ParseInt(strings.TrimSpace(line), 10, 64)
		if err != nil {
			t.Fatalf("%s: line %q: %v", path, line, err)
		}
		out = append(out, time.Unix(0, ns))
	}
	return out
}
