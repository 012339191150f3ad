// Package e2e starts the real binaries through the real scripts and drives
// them with the real CLIs, as a user would.
package e2e

import (
	"bytes"
	"fmt"
	"github.com/kubelite/kubelite/apiserver/apiservertest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

var repo string

func TestMain(m *testing.M) {
	wd, _ := os.Getwd()
	repo = filepath.Dir(wd)
	os.Exit(m.Run())
}

func freePort(t *testing.T) int { return apiservertest.FreePort(t) }

// cluster is one scripts/up.sh cluster with its own state, ports and config.
type cluster struct {
	t     *testing.T
	env   []string
	state string
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	dir := t.TempDir()
	c := &cluster{t: t, state: filepath.Join(dir, "state")}
	c.env = append(os.Environ(),
		"KUBELITE_STATE="+c.state,
		"KUBELITE_CONFIG="+filepath.Join(dir, "config"),
		"KUBELITE_API_PORT="+strconv.Itoa(freePort(t)),
		"KUBELITE_ETCD_PORT="+strconv.Itoa(freePort(t)),
		"KUBELITE_ETCD_PEER_PORT="+strconv.Itoa(freePort(t)),
		"KUBELITE_METRICS_PORT="+strconv.Itoa(freePort(t)),
		"KUBELITE_SERVER=", "ETCDCTL_ENDPOINTS=",
	)
	out, code := c.run("scripts/up.sh")
	if code != 0 {
		t.Fatalf("scripts/up.sh failed (%d):\n%s", code, out)
	}
	t.Cleanup(c.down)
	return c
}

// run runs a command from the repo and returns its combined output and exit code.
func (c *cluster) run(name string, args ...string) (string, int) {
	c.t.Helper()
	cmd := exec.Command(filepath.Join(repo, name), args...)
	cmd.Dir = repo
	cmd.Env = c.env
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return b.String(), ee.ExitCode()
	}
	if err != nil {
		c.t.Fatalf("%s: %v", name, err)
	}
	return b.String(), 0
}

func (c *cluster) must(name string, args ...string) string {
	c.t.Helper()
	out, code := c.run(name, args...)
	if code != 0 {
		c.t.Fatalf("%s %s: exit %d\n%s", name, strings.Join(args, " "), code, out)
	}
	return out
}

func (c *cluster) kubectl(args ...string) string { return c.must("bin/kubectl-lite", args...) }

func (c *cluster) pids() []int {
	var out []int
	files, _ := filepath.Glob(filepath.Join(c.state, "pids", "*.pid"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if pid := pidInFile(b); pid > 0 {
			out = append(out, pid)
		}
	}
	return out
}

// pidInFile is the pid in an up.sh pid file ("PID START_TIME BOOT_ID").
func pidInFile(b []byte) int {
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	pid, _ := strconv.Atoi(f[0])
	return pid
}

// down runs scripts/down.sh and checks that every process it started is gone.
func (c *cluster) down() {
	pids := c.pids()
	if out, code := c.run("scripts/down.sh"); code != 0 {
		c.t.Errorf("scripts/down.sh failed (%d):\n%s", code, out)
	}
	for _, pid := range pids {
		if running(pid) {
			c.t.Errorf("pid %d still runs after scripts/down.sh; killing it", pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// running reports a live process: a zombie waiting for PID 1 to reap it
// (our daemons are orphans once up.sh exits) has stopped running.
func running(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || len(s) < i+3 || s[i+2] != 'Z'
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

const manifest = `apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  containers:
  - name: main
    command: [sleep, "3600"]
    resources: {requests: {cpu: 100m, memory: 16Mi}}
---
apiVersion: v1
kind: Pod
metadata: {name: pinned}
spec:
  nodeName: node-1
  terminationGracePeriodSeconds: 120
  containers: [{name: main, command: [kubelite-app, --on-term, ignore]}]
`

func TestPodStoryThroughTheCLIs(t *testing.T) {
	c := startCluster(t)
	// up.sh run twice is harmless.
	if out := c.must("scripts/up.sh"); !strings.Contains(out, "already running") {
		t.Errorf("second up.sh did not notice the running cluster:\n%s", out)
	}
	f := filepath.Join(t.TempDir(), "pods.yaml")
	if err := os.WriteFile(f, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := c.kubectl("apply", "-f", f); !strings.Contains(out, "pod/web created") || !strings.Contains(out, "pod/pinned created") {
		t.Fatalf("apply said:\n%s", out)
	}
	if out := c.kubectl("apply", "-f", f); !strings.Contains(out, "pod/web unchanged") {
		t.Errorf("second apply said:\n%s", out)
	}
	// The scheduler places web; its kubelet runs it.
	waitFor(t, "web to be scheduled and run", func() bool {
		out, _ := c.run("bin/kubectl-lite", "get", "pod", "web", "-o", "wide")
		return strings.Contains(out, "Running") && strings.Contains(out, "node-")
	})
	out := c.kubectl("get", "pods")
	for _, want := range []string{"NAME", "READY", "STATUS", "RESTARTS", "AGE", "web", "1/1"} {
		if !strings.Contains(out, want) {
			t.Errorf("get pods lacks %q:\n%s", want, out)
		}
	}
	waitFor(t, "the Scheduled event in describe", func() bool {
		out, _ := c.run("bin/kubectl-lite", "describe", "pod", "web")
		return strings.Contains(out, "Scheduled") && strings.Contains(out, "Successfully assigned default/web to node-")
	})
	if out := c.kubectl("get", "pods", "-l", "app=web", "-o", "name"); strings.TrimSpace(out) != "pod/web" {
		t.Errorf("get -l app=web -o name = %q", out)
	}

	// The stored object, read from etcd directly and decoded.
	key := c.must("bin/etcdctl-lite", "get", "--prefix", "--keys-only", "/registry/pods")
	if !strings.Contains(key, "/registry/pods/default/web") {
		t.Fatalf("etcdctl-lite keys:\n%s", key)
	}
	val := c.must("bin/etcdctl-lite", "get", "/registry/pods/default/web", "-o", "json")
	for _, want := range []string{`"kind": "Pod"`, `"phase": "Running"`, `"restartPolicy": "Always"`, `"nodeName": "node-`} {
		if !strings.Contains(val, want) {
			t.Errorf("etcdctl-lite value lacks %s:\n%s", want, val)
		}
	}

	// The bound pod runs: a real process, its log readable through the apiserver.
	waitFor(t, "pinned to run", func() bool {
		out, _ := c.run("bin/kubectl-lite", "get", "pod", "pinned")
		return strings.Contains(out, "Running")
	})
	waitFor(t, "pinned's log", func() bool {
		out, _ := c.run("bin/kubectl-lite", "logs", "pinned")
		return strings.Contains(out, "kubelite-app pinned: pid")
	})
	// A bound pod is deleted gracefully: it stays, shown Terminating
	// (this one ignores SIGTERM and has 120 s of grace).
	if out := c.kubectl("delete", "pod", "pinned", "--wait=false"); !strings.Contains(out, `pod "pinned" deleted`) {
		t.Errorf("delete said:\n%s", out)
	}
	if out := c.kubectl("get", "pod", "pinned"); !strings.Contains(out, "Terminating") {
		t.Errorf("a gracefully deleted pod is not shown Terminating:\n%s", out)
	}
	if out := c.kubectl("describe", "pod", "pinned"); !strings.Contains(out, "Terminating (lasts") {
		t.Errorf("describe lacks the termination:\n%s", out)
	}
	if out := c.kubectl("delete", "pod", "pinned", "--grace-period=0", "--force"); !strings.Contains(out, "force deleted") {
		t.Errorf("force delete said:\n%s", out)
	}

	// The unbound pod goes at once; its key leaves etcd.
	if out := c.kubectl("delete", "pod", "web"); !strings.Contains(out, `pod "web" deleted`) {
		t.Errorf("delete said:\n%s", out)
	}
	if keys := c.must("bin/etcdctl-lite", "get", "--prefix", "--keys-only", "/registry/pods"); strings.TrimSpace(keys) != "" {
		t.Errorf("keys left after deleting every pod:\n%s", keys)
	}
}

func TestExitCodesAndMessages(t *testing.T) {
	c := startCluster(t)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"get"}, 2, "you must specify the type of resource"},
		{[]string{"get", "widgets"}, 2, `doesn't have a resource type "widgets"`},
		{[]string{"get", "pods", "--bogus"}, 2, "unknown flag"},
		{[]string{"get", "pod", "nope"}, 1, `Error from server (NotFound): pods "nope" not found`},
		{[]string{"get", "pods", "--server", "127.0.0.1:1"}, 1, "127.0.0.1:1 (from --server) cannot be reached"},
		{[]string{"delete", "pod"}, 2, "no name was specified"},
	} {
		out, code := c.run("bin/kubectl-lite", tc.args...)
		if code != tc.code || !strings.Contains(out, tc.want) {
			t.Errorf("kubectl-lite %s: exit %d (want %d), output:\n%s\n(want it to contain %q)", strings.Join(tc.args, " "), code, tc.code, out, tc.want)
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  containers:\n  - name: c\n    comand: [x]\n"), 0o644)
	out, code := c.run("bin/kubectl-lite", "apply", "-f", bad)
	if code != 1 || !strings.Contains(out, `unknown field "spec.containers[0].comand"`) {
		t.Errorf("unknown field: exit %d:\n%s", code, out)
	}
	if keys := c.must("bin/etcdctl-lite", "get", "--prefix", "--keys-only", "/registry/pods"); strings.TrimSpace(keys) != "" {
		t.Errorf("a rejected manifest left keys:\n%s", keys)
	}
}

func TestKubeletKilledWithSIGKILLAdoptsItsPods(t *testing.T) {
	c := startCluster(t)
	marks := t.TempDir()
	manifest := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: survivor}
spec:
  nodeName: node-1
  containers:
  - name: main
    command: [sh, -c, "trap 'echo got-SIGTERM >> %[1]s/term; exit 0' TERM; echo $$ >> %[1]s/starts; while true; do sleep 0.1; done"]
`, marks)
	f := filepath.Join(t.TempDir(), "pod.yaml")
	os.WriteFile(f, []byte(manifest), 0o644)
	c.kubectl("apply", "-f", f)
	waitFor(t, "survivor to run", func() bool {
		out, _ := c.run("bin/kubectl-lite", "get", "pod", "survivor")
		return strings.Contains(out, "1/1") && strings.Contains(out, "Running")
	})
	starts := filepath.Join(marks, "starts")
	waitFor(t, "the process to report its pid", func() bool { b, _ := os.ReadFile(starts); return len(b) > 0 })
	b, _ := os.ReadFile(starts)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))

	kpidB, err := os.ReadFile(filepath.Join(c.state, "pids", "kubelet-node-1.pid"))
	if err != nil {
		t.Fatal(err)
	}
	kpid := pidInFile(kpidB)
	if err := syscall.Kill(kpid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the kubelet to die", func() bool { return !running(kpid) })
	if !running(pid) {
		t.Fatal("kill -9 of the kubelet killed its container")
	}
	// up.sh restarts what is not running.
	if out := c.must("scripts/up.sh"); !strings.Contains(out, "started kubelet-node-1") {
		t.Fatalf("up.sh did not restart the kubelet:\n%s", out)
	}
	time.Sleep(2 * time.Second) // give a wrong kubelet time to start a duplicate (not a wait for a result)
	if b, _ := os.ReadFile(starts); strings.Count(string(b), "\n") != 1 {
		t.Errorf("the container was started again after the kubelet restart: %q", b)
	}
	if out := c.kubectl("get", "pod", "survivor"); !strings.Contains(out, "Running") || !strings.Contains(out, " 0 ") {
		t.Errorf("after the restart:\n%s", out)
	}
	c.kubectl("delete", "pod", "survivor")
	if b, _ := os.ReadFile(filepath.Join(marks, "term")); string(b) != "got-SIGTERM\n" {
		t.Errorf("the process did not report SIGTERM: %q", b)
	}
	waitFor(t, "the process to be gone", func() bool { return !running(pid) })
}

func TestUnschedulablePodIsExplained(t *testing.T) {
	c := startCluster(t)
	c.kubectl("apply", "-f", filepath.Join(repo, "deploy", "examples", "huge.yaml"))
	waitFor(t, "the explanation", func() bool {
		out, _ := c.run("bin/kubectl-lite", "describe", "pod", "huge")
		return strings.Contains(out, "FailedScheduling") && strings.Contains(out, "0/2 nodes are available: 2 Insufficient cpu.")
	})
	if out := c.kubectl("get", "pod", "huge"); !strings.Contains(out, "Pending") {
		t.Errorf("an unschedulable pod is not Pending:\n%s", out)
	}
}

func TestSchedulerFailoverAfterSIGKILL(t *testing.T) {
	c := &cluster{t: t}
	dir := t.TempDir()
	c.state = filepath.Join(dir, "state")
	c.env = append(os.Environ(),
		"KUBELITE_STATE="+c.state, "KUBELITE_CONFIG="+filepath.Join(dir, "config"),
		"KUBELITE_API_PORT="+strconv.Itoa(freePort(t)), "KUBELITE_ETCD_PORT="+strconv.Itoa(freePort(t)),
		"KUBELITE_ETCD_PEER_PORT="+strconv.Itoa(freePort(t)), "KUBELITE_METRICS_PORT="+strconv.Itoa(freePort(t)),
		"KUBELITE_SERVER=", "ETCDCTL_ENDPOINTS=", "NODES=1", "SCHEDULERS=2",
		"SCHEDULER_FLAGS=--leader-elect-lease-duration=3s --leader-elect-renew-deadline=2s --leader-elect-retry-period=500ms",
	)
	if out, code := c.run("scripts/up.sh"); code != 0 {
		t.Fatalf("up.sh: %s", out)
	}
	t.Cleanup(c.down)
	var holder string
	waitFor(t, "a scheduler to lead", func() bool {
		out, _ := c.run("bin/kubectl-lite", "get", "lease", "kube-scheduler", "-n", "kube-system", "--no-headers")
		f := strings.Fields(out)
		if len(f) >= 2 && f[1] != "" {
			holder = f[1]
			return true
		}
		return false
	})
	// The identity is host_pid.
	pid, err := strconv.Atoi(holder[strings.LastIndex(holder, "_")+1:])
	if err != nil {
		t.Fatalf("holder %q", holder)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	c.kubectl("apply", "-f", filepath.Join(repo, "deploy", "examples", "pod.yaml"))
	waitFor(t, "the other scheduler to place the pod", func() bool {
		out, _ := c.run("bin/kubectl-lite", "get", "pod", "web", "-o", "wide")
		return strings.Contains(out, "node-1")
	})
	t.Logf("pod scheduled %v after the leader was killed (lease 3s)", time.Since(killed).Round(time.Millisecond))
	out := c.kubectl("get", "lease", "kube-scheduler", "-n", "kube-system", "--no-headers")
	if strings.Contains(out, holder) {
		t.Errorf("the dead scheduler still holds the lease: %s", out)
	}
}
