package status

import (
	"testing"
	"time"

	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

func spec(policy string, names ...string) *v1.PodSpec {
	s := &v1.PodSpec{RestartPolicy: policy}
	for _, n := range names {
		s.Containers = append(s.Containers, &v1.Container{Name: n, Command: []string{"x"}})
	}
	return s
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func running() Container {
	return Container{Current: &Attempt{StartedAt: t0}, Ready: true, Started: true}
}
func exited(code int32) Container {
	return Container{Current: &Attempt{StartedAt: t0, Exited: true, ExitCode: code, FinishedAt: t0.Add(time.Second)}}
}
func crashLooping(code int32) Container {
	c := exited(code)
	c.Restarts = 3
	c.WaitingReason = "CrashLoopBackOff"
	return c
}

func TestPhase(t *testing.T) {
	tests := []struct {
		name       string
		policy     string
		containers map[string]Container
		terminal   bool
		want       string
	}{
		{"nothing started yet", "Always", map[string]Container{"a": {}, "b": {}}, false, "Pending"},
		{"one of two started", "Always", map[string]Container{"a": running(), "b": {}}, false, "Pending"},
		{"all started", "Always", map[string]Container{"a": running(), "b": running()}, false, "Running"},
		{"one running one done", "Never", map[string]Container{"a": running(), "b": exited(0)}, false, "Running"},
		{"all exited 0 under Never", "Never", map[string]Container{"a": exited(0), "b": exited(0)}, false, "Succeeded"},
		{"all exited 0 under OnFailure", "OnFailure", map[string]Container{"a": exited(0)}, false, "Succeeded"},
		{"exited 0 under Always restarts: Running", "Always", map[string]Container{"a": exited(0)}, false, "Running"},
		{"one failed under Never", "Never", map[string]Container{"a": exited(0), "b": exited(1)}, false, "Failed"},
		{"failed under OnFailure restarts: Running", "OnFailure", map[string]Container{"a": exited(2)}, false, "Running"},
		{"crash loop under Always stays Running", "Always", map[string]Container{"a": crashLooping(1)}, false, "Running"},
		{"deleted pod with all exit 0", "Always", map[string]Container{"a": exited(0)}, true, "Succeeded"},
		{"deleted pod killed by SIGTERM", "Always", map[string]Container{"a": exited(143)}, true, "Failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := spec(tt.policy, "a")
			if _, ok := tt.containers["b"]; ok {
				s = spec(tt.policy, "a", "b")
			}
			pod := &v1.Pod{Spec: s, Status: &v1.PodStatus{}}
			st := ComputePodStatus(Input{Pod: pod, Containers: tt.containers, Now: t0, Terminal: tt.terminal})
			if st.Phase != tt.want {
				t.Errorf("phase = %s, want %s", st.Phase, tt.want)
			}
		})
	}
}

func TestContainerStatuses(t *testing.T) {
	pod := &v1.Pod{Spec: spec("Always", "a"), Status: &v1.PodStatus{}}
	cl := crashLooping(1)
	cl.Previous = &Attempt{Exited: true, ExitCode: 1}
	cl.WaitingMessage = "back-off 20s restarting failed container=a"
	st := ComputePodStatus(Input{Pod: pod, Containers: map[string]Container{"a": cl}, Now: t0})
	cs := st.ContainerStatuses[0]
	if cs.State.GetWaiting().GetReason() != "CrashLoopBackOff" || cs.LastState.GetTerminated().GetExitCode() != 1 || cs.RestartCount != 3 || cs.Ready {
		t.Errorf("crash-looping container status: %v", cs)
	}
	for _, c := range st.Conditions {
		if c.Type == "Ready" && (c.Status != "False" || c.Reason != "ContainersNotReady") {
			t.Errorf("Ready condition: %v", c)
		}
	}

	oom := exited(137)
	oom.Current.Signal, oom.Current.OOMKilled = 9, true
	st = ComputePodStatus(Input{Pod: &v1.Pod{Spec: spec("Never", "a"), Status: &v1.PodStatus{}}, Containers: map[string]Container{"a": oom}, Now: t0})
	if r := st.ContainerStatuses[0].State.GetTerminated().GetReason(); r != "OOMKilled" || st.Phase != "Failed" {
		t.Errorf("OOM: reason %s phase %s", r, st.Phase)
	}
	st = ComputePodStatus(Input{Pod: &v1.Pod{Spec: spec("Never", "a"), Status: &v1.PodStatus{}}, Containers: map[string]Container{"a": exited(0)}, Now: t0})
	if r := st.ContainerStatuses[0].State.GetTerminated().GetReason(); r != "Completed" {
		t.Errorf("exit 0 reason = %s, want Completed", r)
	}
	created := ComputePodStatus(Input{Pod: &v1.Pod{Spec: spec("Always", "a"), Status: &v1.PodStatus{}}, Containers: map[string]Container{}, Now: t0})
	if r := created.ContainerStatuses[0].State.GetWaiting().GetReason(); r != "ContainerCreating" || created.Phase != "Pending" {
		t.Errorf("new pod: waiting %s phase %s", r, created.Phase)
	}
}

func TestTerminalPhaseIsSticky(t *testing.T) {
	pod := &v1.Pod{Spec: spec("Always", "a"), Status: &v1.PodStatus{Phase: "Failed", Reason: "DeadlineExceeded"}}
	st := ComputePodStatus(Input{Pod: pod, Containers: map[string]Container{"a": running()}, Now: t0})
	if st.Phase != "Failed" || st.Reason != "DeadlineExceeded" {
		t.Errorf("phase went from Failed to %s (reason %q)", st.Phase, st.Reason)
	}
}
