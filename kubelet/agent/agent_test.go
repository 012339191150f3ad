package agent_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubelite/kubelite/apiserver/apiservertest"
	"github.com/kubelite/kubelite/internal/client"
	"github.com/kubelite/kubelite/kubelet/agent"
	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

var binDir string

// TestMain builds the shim and the sample app once and puts them on PATH.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kubelet-test-bin-")
	if err != nil {
		panic(err)
	}
	binDir = dir
	for out, pkg := range map[string]string{"kubelet-shim": "github.com/kubelite/kubelite/kubelet/shim", "kubelite-app": "github.com/kubelite/kubelite/deploy/app"} {
		if b, err := exec.Command("go", "build", "-o", filepath.Join(dir, out), pkg).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", pkg, err, b)
			os.Exit(1)
		}
	}
	os.Setenv("PATH", dir+":"+os.Getenv("PATH"))
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type kubelet struct {
	root   string
	cancel context.CancelFunc
	done   chan error
}

func startKubelet(t *testing.T, api *apiservertest.Server, node, root string) *kubelet {
	t.Helper()
	cfg := agent.Config{
		APIServer: api.Addr, NodeName: node, NodeIP: "127.0.0.1", RootDir: root,
		ShimPath: filepath.Join(binDir, "kubelet-shim"), Listen: "127.0.0.1:0",
		CPU: "4", Memory: "8Gi", MaxPods: 110,
		LeaseDuration: 40 * time.Second, LeaseRenewInterval: time.Second,
		StatusUpdateFrequency: time.Second, StatusReportFrequency: time.Minute,
		BackOffBase: 500 * time.Millisecond, BackOffMax: 2 * time.Second,
		ContainerLogMaxSize: 10 << 20, ContainerLogMaxFiles: 3,
	}
	ctx, cancel := context.WithCancel(context.Background())
	k := &kubelet{root: root, cancel: cancel, done: make(chan error, 1)}
	go func() { k.done <- agent.Run(ctx, cfg) }()
	waitFor(t, "node "+node+" Ready", func() bool {
		n, err := api.Client.Nodes().Get(context.Background(), "", node)
		if err != nil {
			return false
		}
		for _, c := range n.GetStatus().GetConditions() {
			if c.Type == "Ready" && c.Status == "True" {
				return true
			}
		}
		return false
	})
	return k
}

// stop ends the kubelet; its containers keep running (as after a crash).
func (k *kubelet) stop(t *testing.T) {
	k.cancel()
	select {
	case err := <-k.done:
		if err != nil {
			t.Errorf("kubelet returned %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("kubelet did not stop")
	}
}

// killLeftovers kills whatever containers still run under root.
func killLeftovers(root string) {
	states, _ := filepath.Glob(filepath.Join(root, "state", "*.state.json"))
	for _, s := range states {
		if _, err := os.Stat(strings.TrimSuffix(s, ".state.json") + ".status.json"); err == nil {
			continue
		}
		b, _ := os.ReadFile(s)
		var pgid int
		if i := strings.Index(string(b), `"pgid":`); i >= 0 {
			fmt.Sscanf(string(b[i+7:]), "%d", &pgid)
		}
		if pgid > 0 {
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
		}
	}
}

// setup starts an apiserver and one kubelet on node-1.
func setup(t *testing.T) (*apiservertest.Server, *kubelet) {
	api := apiservertest.Start(t, apiservertest.Options{})
	root := t.TempDir()
	k := startKubelet(t, api, "node-1", root)
	t.Cleanup(func() {
		k.stop(t)
		killLeftovers(root)
	})
	return api, k
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// ctx bounds one API call of a test.
func ctx() context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	time.AfterFunc(30*time.Second, cancel)
	return c
}

func pod(name, policy string, command ...string) *v1.Pod {
	return &v1.Pod{
		Metadata: &v1.ObjectMeta{Name: name},
		Spec: &v1.PodSpec{NodeName: "node-1", RestartPolicy: policy,
			Containers: []*v1.Container{{Name: "main", Command: command}}},
	}
}

func create(t *testing.T, api *apiservertest.Server, p *v1.Pod) *v1.Pod {
	t.Helper()
	out, err := api.Client.Pods().Create(ctx(), p)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// waitPod polls the pod until cond holds and returns it.
func waitPod(t *testing.T, api *apiservertest.Server, name, what string, cond func(*v1.Pod) bool) *v1.Pod {
	t.Helper()
	var last *v1.Pod
	deadline := time.Now().Add(60 * time.Second)
	for {
		p, err := api.Client.Pods().Get(ctx(), "default", name)
		if err == nil {
			last = p
			if cond(p) {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod %s: timed out waiting for %s; last status: %v", name, what, last.GetStatus())
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func waitGone(t *testing.T, api *apiservertest.Server, name string) {
	t.Helper()
	waitFor(t, "pod "+name+" to leave the API", func() bool {
		_, err := api.Client.Pods().Get(ctx(), "default", name)
		return client.IsNotFound(err)
	})
}

func cs(p *v1.Pod) *v1.ContainerStatus {
	if s := p.GetStatus().GetContainerStatuses(); len(s) > 0 {
		return s[0]
	}
	return &v1.ContainerStatus{}
}

func readPid(t *testing.T, path string) int {
	t.Helper()
	var pid int
	waitFor(t, "pid file "+path, func() bool {
		b, err := os.ReadFile(path)
		if err != nil {
			return false
		}
		f := strings.Fields(string(b))
		if len(f) < 3 {
			return false
		}
		pid, _ = strconv.Atoi(f[2])
		return pid > 0
	})
	return pid
}

// running reports a live, non-zombie process.
func running(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && len(s) > i+2 && s[i+2] != 'Z'
}

func TestPhasesAndRestartPolicies(t *testing.T) {
	api, _ := setup(t)
	create(t, api, pod("runs", "Always", "kubelite-app"))
	create(t, api, pod("succeeds", "Never", "sh", "-c", "exit 0"))
	create(t, api, pod("fails", "Never", "sh", "-c", "exit 1"))
	create(t, api, pod("crashes", "Always", "sh", "-c", "exit 3"))
	create(t, api, pod("retries", "OnFailure", "sh", "-c", "if [ -f marker ]; then exit 0; fi; touch marker; exit 1"))

	p := waitPod(t, api, "runs", "Running and Ready", func(p *v1.Pod) bool { return p.Status.Phase == "Running" && cs(p).Ready })
	if cs(p).State.GetRunning().GetStartedAt() == nil || !cs(p).GetStarted() {
		t.Errorf("running container status: %v", cs(p))
	}
	waitPod(t, api, "succeeds", "Succeeded", func(p *v1.Pod) bool {
		return p.Status.Phase == "Succeeded" && cs(p).State.GetTerminated().GetReason() == "Completed"
	})
	p = waitPod(t, api, "fails", "Failed", func(p *v1.Pod) bool { return p.Status.Phase == "Failed" })
	if tt := cs(p).State.GetTerminated(); tt.GetExitCode() != 1 || tt.GetReason() != "Error" {
		t.Errorf("failed container: %v", tt)
	}
	p = waitPod(t, api, "crashes", "CrashLoopBackOff with restarts", func(p *v1.Pod) bool {
		return cs(p).State.GetWaiting().GetReason() == "CrashLoopBackOff" && cs(p).RestartCount >= 2
	})
	if p.Status.Phase != "Running" || cs(p).LastState.GetTerminated().GetExitCode() != 3 {
		t.Errorf("a crash-looping pod under Always: phase %s, lastState %v; want Running and exit 3", p.Status.Phase, cs(p).LastState)
	}
	p = waitPod(t, api, "retries", "Succeeded after one restart", func(p *v1.Pod) bool { return p.Status.Phase == "Succeeded" })
	if cs(p).RestartCount != 1 {
		t.Errorf("OnFailure pod restarted %d times, want 1", cs(p).RestartCount)
	}
}

func TestRunContainerErrorIsReported(t *testing.T) {
	api, _ := setup(t)
	create(t, api, pod("nobin", "Always", "/no/such/program"))
	p := waitPod(t, api, "nobin", "RunContainerError", func(p *v1.Pod) bool {
		return cs(p).State.GetWaiting().GetReason() == "RunContainerError"
	})
	if msg := cs(p).State.GetWaiting().GetMessage(); !strings.Contains(msg, "no such file or directory") {
		t.Errorf("waiting message %q lacks the OS error", msg)
	}
	if p.Status.Phase != "Pending" {
		t.Errorf("phase = %s, want Pending", p.Status.Phase)
	}
	waitFor(t, "a Failed event", func() bool {
		evs, _, _ := api.Client.Events().List(ctx(), &v1.ListRequest{FieldSelector: "involvedObject.name=nobin,reason=Failed"})
		return len(evs) > 0
	})
}

func TestGracefulDeletionRunsPreStopThenSIGTERM(t *testing.T) {
	api, k := setup(t)
	out := t.TempDir() // outside the pod folder, which goes with the pod
	order := filepath.Join(out, "order")
	p := pod("graceful", "Always", "sh", "-c", `trap 'echo term >> `+order+`; exit 0' TERM; echo "started 0 $$" > pid; while true; do sleep 0.05; done`)
	p.Spec.Containers[0].Lifecycle = &v1.Lifecycle{PreStop: &v1.LifecycleHandler{Exec: &v1.ExecAction{Command: []string{"sh", "-c", "echo prestop >> " + order}}}}
	created := create(t, api, p)
	waitPod(t, api, "graceful", "Running", func(p *v1.Pod) bool { return p.Status.Phase == "Running" })
	dir := filepath.Join(k.root, "pods", created.Metadata.Uid)
	pid := readPid(t, filepath.Join(dir, "pid"))
	if _, err := api.Client.Pods().Delete(ctx(), "default", "graceful", nil); err != nil {
		t.Fatal(err)
	}
	waitGone(t, api, "graceful")
	waitFor(t, "the process to end", func() bool { return !running(pid) })
	if got, _ := os.ReadFile(order); string(got) != "prestop\nterm\n" {
		t.Errorf("order of events = %q, want preStop then SIGTERM", got)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the pod folder is left behind: %v", err)
	}
	evs, _, _ := api.Client.Events().List(ctx(), &v1.ListRequest{FieldSelector: "involvedObject.name=graceful,reason=Killing"})
	if len(evs) == 0 || evs[0].Message != "Stopping container main" {
		t.Errorf("Killing events: %v", evs)
	}
}

func TestIgnoredSIGTERMIsKilledAfterTheGracePeriod(t *testing.T) {
	api, k := setup(t)
	grace := int64(2)
	p := pod("stubborn", "Always", "kubelite-app", "--on-term", "ignore", "--report-start", "pid")
	p.Spec.TerminationGracePeriodSeconds = &grace
	created := create(t, api, p)
	waitPod(t, api, "stubborn", "Running", func(p *v1.Pod) bool { return p.Status.Phase == "Running" })
	pid := readPid(t, filepath.Join(k.root, "pods", created.Metadata.Uid, "pid"))
	start := time.Now()
	if _, err := api.Client.Pods().Delete(ctx(), "default", "stubborn", nil); err != nil {
		t.Fatal(err)
	}
	waitGone(t, api, "stubborn")
	if took := time.Since(start); took < time.Duration(grace)*time.Second {
		t.Errorf("the pod was gone after %v, before its %ds grace period", took, grace)
	}
	waitFor(t, "the process to die", func() bool { return !running(pid) })
}

func TestForceDeleteKillsAtOnce(t *testing.T) {
	api, k := setup(t)
	grace := int64(300)
	p := pod("forced", "Always", "kubelite-app", "--on-term", "ignore", "--report-start", "pid")
	p.Spec.TerminationGracePeriodSeconds = &grace
	created := create(t, api, p)
	waitPod(t, api, "forced", "Running", func(p *v1.Pod) bool { return p.Status.Phase == "Running" })
	pid := readPid(t, filepath.Join(k.root, "pods", created.Metadata.Uid, "pid"))
	zero := int64(0)
	if _, err := api.Client.Pods().Delete(ctx(), "default", "forced", &v1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	// Well inside the 300 s grace period: the kill is immediate.
	waitFor(t, "the force-deleted pod's process to die", func() bool { return !running(pid) })
}

func freePort(t *testing.T) string { return strconv.Itoa(apiservertest.FreePort(t)) }

func TestProbes(t *testing.T) {
	api, _ := setup(t)
	port := freePort(t)
	ready := pod("ready-later", "Always", "kubelite-app", "--serve", "127.0.0.1:"+port, "--ready-after", "2s")
	ready.Spec.Containers[0].ReadinessProbe = &v1.Probe{HttpGet: &v1.HTTPGetAction{Path: "/ready", Port: port}, PeriodSeconds: 1}
	ready.Spec.Containers[0].LivenessProbe = &v1.Probe{TcpSocket: &v1.TCPSocketAction{Port: port}, PeriodSeconds: 1, InitialDelaySeconds: 1}
	create(t, api, ready)
	p := waitPod(t, api, "ready-later", "Running", func(p *v1.Pod) bool { return p.Status.Phase == "Running" })
	if cs(p).Ready {
		t.Error("ready before the readiness probe passed")
	}
	p = waitPod(t, api, "ready-later", "Ready", func(p *v1.Pod) bool { return cs(p).Ready })
	for _, c := range p.Status.Conditions {
		if c.Type == "Ready" && c.Status != "True" {
			t.Errorf("Ready condition %v with a ready container", c)
		}
	}

	// Liveness: the file disappears after a moment, the probe fails, the
	// container is restarted.
	live := pod("unhealthy", "Always", "sh", "-c", "touch alive; sleep 1; rm alive; while true; do sleep 0.1; done")
	live.Spec.Containers[0].LivenessProbe = &v1.Probe{Exec: &v1.ExecAction{Command: []string{"test", "-f", "alive"}}, PeriodSeconds: 1, FailureThreshold: 1}
	create(t, api, live)
	waitPod(t, api, "unhealthy", "a restart after a failed liveness probe", func(p *v1.Pod) bool { return cs(p).RestartCount >= 1 })
	waitFor(t, "Unhealthy and Killing events", func() bool {
		evs, _, _ := api.Client.Events().List(ctx(), &v1.ListRequest{FieldSelector: "involvedObject.name=unhealthy"})
		var unhealthy, killing bool
		for _, e := range evs {
			unhealthy = unhealthy || (e.Reason == "Unhealthy" && strings.Contains(e.Message, "Liveness probe failed"))
			killing = killing || (e.Reason == "Killing" && strings.Contains(e.Message, "failed liveness probe"))
		}
		return unhealthy && killing
	})
}

func readLogs(t *testing.T, api *apiservertest.Server, req *v1.PodLogRequest, until string) string {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := v1.NewPodServiceClient(api.Client.Conn()).Logs(c, req)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for {
		chunk, err := s.Recv()
		if err == io.EOF {
			return b.String()
		}
		if err != nil {
			t.Fatalf("logs: %v (so far %q)", err, b.String())
		}
		b.Write(chunk.Data)
		if until != "" && strings.Contains(b.String(), until) {
			return b.String()
		}
	}
}

func TestLogsThroughTheAPIServer(t *testing.T) {
	api, _ := setup(t)
	create(t, api, pod("talker", "Always", "sh", "-c", `for i in 1 2 3; do echo line $i; done; echo oops >&2; sleep 1; echo later; while true; do sleep 1; done`))
	waitPod(t, api, "talker", "Running", func(p *v1.Pod) bool { return p.Status.Phase == "Running" })
	got := readLogs(t, api, &v1.PodLogRequest{Namespace: "default", Name: "talker", Follow: true}, "later")
	// stdout and stderr are copied separately: order holds within a stream.
	if !strings.Contains(strings.ReplaceAll(got, "oops\n", ""), "line 1\nline 2\nline 3\nlater\n") || !strings.Contains(got, "oops\n") {
		t.Errorf("followed log = %q", got)
	}
	tail := int64(1)
	if got := readLogs(t, api, &v1.PodLogRequest{Namespace: "default", Name: "talker", TailLines: &tail}, ""); got != "later\n" {
		t.Errorf("--tail 1 = %q, want %q", got, "later\n")
	}
	ts := readLogs(t, api, &v1.PodLogRequest{Namespace: "default", Name: "talker", Timestamps: true}, "")
	for _, line := range strings.Split(strings.TrimSpace(ts), "\n") {
		stamp, _, _ := strings.Cut(line, " ")
		if _, err := time.Parse(time.RFC3339Nano, stamp); err != nil {
			t.Errorf("--timestamps line %q does not start with a time: %v", line, err)
		}
	}

	create(t, api, pod("crasher", "Always", "sh", "-c", "echo run $(ls -d /proc/self >/dev/null; date +%N); exit 1"))
	waitPod(t, api, "crasher", "a restart", func(p *v1.Pod) bool { return cs(p).RestartCount >= 1 })
	if got := readLogs(t, api, &v1.PodLogRequest{Namespace: "default", Name: "crasher", Previous: true}, ""); !strings.HasPrefix(got, "run ") {
		t.Errorf("--previous = %q", got)
	}
}

func TestKubeletRestartAdoptsRunningPods(t *testing.T) {
	api := apiservertest.Start(t, apiservertest.Options{})
	root := t.TempDir()
	t.Cleanup(func() { killLeftovers(root) })
	k := startKubelet(t, api, "node-1", root)
	keeper := create(t, api, pod("keeper", "Always", "kubelite-app", "--report-start", "pid"))
	quitter := create(t, api, pod("quitter", "Never", "kubelite-app", "--exit-after", "1500ms", "--exit-code", "7"))
	doomed := create(t, api, pod("doomed", "Always", "kubelite-app", "--report-start", "pid"))
	for _, n := range []string{"keeper", "quitter", "doomed"} {
		waitPod(t, api, n, "Running", func(p *v1.Pod) bool { return p.Status.Phase == "Running" })
	}
	keeperPid := readPid(t, filepath.Join(root, "pods", keeper.Metadata.Uid, "pid"))
	doomedPid := readPid(t, filepath.Join(root, "pods", doomed.Metadata.Uid, "pid"))
	k.stop(t)

	// While the kubelet is away: quitter exits 7, doomed is force-deleted.
	zero := int64(0)
	if _, err := api.Client.Pods().Delete(ctx(), "default", "doomed", &v1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // let quitter exit while no kubelet runs (not a wait for a result)
	if !running(keeperPid) {
		t.Fatal("stopping the kubelet stopped a container")
	}

	k = startKubelet(t, api, "node-1", root)
	defer k.stop(t)
	p := waitPod(t, api, "quitter", "Failed with exit 7", func(p *v1.Pod) bool { return p.Status.Phase == "Failed" })
	if code := cs(p).State.GetTerminated().GetExitCode(); code != 7 {
		t.Errorf("exit code seen after the restart = %d, want 7", code)
	}
	waitFor(t, "the force-deleted pod's process to be stopped", func() bool { return !running(doomedPid) })
	p = waitPod(t, api, "keeper", "Running", func(p *v1.Pod) bool { return p.Status.Phase == "Running" })
	if !running(keeperPid) || cs(p).RestartCount != 0 {
		t.Errorf("keeper: pid %d running=%v, restarts %d; want the same process, never restarted", keeperPid, running(keeperPid), cs(p).RestartCount)
	}
	b, _ := os.ReadFile(filepath.Join(root, "pods", keeper.Metadata.Uid, "pid"))
	if n := strings.Count(string(b), "started"); n != 1 {
		t.Errorf("keeper was started %d times", n)
	}
	_ = quitter
}

func TestActiveDeadlineFailsThePod(t *testing.T) {
	api, _ := setup(t)
	d := int64(1)
	p := pod("deadline", "Always", "kubelite-app")
	p.Spec.ActiveDeadlineSeconds = &d
	create(t, api, p)
	p = waitPod(t, api, "deadline", "Failed", func(p *v1.Pod) bool { return p.Status.Phase == "Failed" })
	if p.Status.Reason != "DeadlineExceeded" {
		t.Errorf("reason = %q, want DeadlineExceeded", p.Status.Reason)
	}
	if cs(p).State.GetTerminated() == nil {
		t.Errorf("the container is not terminated: %v", cs(p).State)
	}
}

func TestMemoryLimitIsOOMKilled(t *testing.T) {
	api, _ := setup(t)
	n, err := api.Client.Nodes().Get(ctx(), "", "node-1")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range n.Status.Conditions {
		if c.Type == "ResourceLimitsEnforced" && c.Status != "True" {
			t.Skipf("cgroup limits unavailable here: %s", c.Message)
		}
	}
	p := pod("hog", "Never", "kubelite-app", "--alloc", "256Mi")
	p.Spec.Containers[0].Resources = &v1.ResourceRequirements{Limits: map[string]string{"memory": "32Mi"}}
	create(t, api, p)
	p = waitPod(t, api, "hog", "Failed", func(p *v1.Pod) bool { return p.Status.Phase == "Failed" })
	if tt := cs(p).State.GetTerminated(); tt.GetReason() != "OOMKilled" || tt.GetExitCode() != 137 {
		t.Errorf("terminated = %v, want OOMKilled / 137", tt)
	}
	waitFor(t, "an OOMKilling event", func() bool {
		evs, _, _ := api.Client.Events().List(ctx(), &v1.ListRequest{FieldSelector: "involvedObject.name=hog,reason=OOMKilling"})
		return len(evs) > 0
	})
}
