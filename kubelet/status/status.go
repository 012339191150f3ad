// Package status computes a pod's status from what the kubelet knows of its
// containers, as Kubernetes' kubelet does (getPhase, container statuses,
// conditions). Everything here is a pure function.
package status

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

// Attempt is one start of a container.
type Attempt struct {
	ID         string
	StartedAt  time.Time
	Exited     bool
	ExitCode   int32
	Signal     int32
	OOMKilled  bool
	FinishedAt time.Time
}

// Container is what the kubelet knows of one container.
type Container struct {
	Current  *Attempt // the latest attempt; nil if never started
	Previous *Attempt // the one before
	Restarts int32
	// WaitingReason is set while the container waits to (re)start:
	// ContainerCreating, CrashLoopBackOff, RunContainerError.
	WaitingReason  string
	WaitingMessage string
	Ready          bool // readiness (true without a readiness probe once running)
	Started        bool // startup probe passed (true without one once running)
}

// Input is everything ComputePodStatus needs.
type Input struct {
	Pod        *v1.Pod
	Containers map[string]Container
	HostIP     string
	StartTime  time.Time
	Now        time.Time
	// Terminal marks a pod being stopped for good (deleted, deadline): its
	// phase becomes Succeeded or Failed from the exit codes.
	Terminal bool
	// Failed marks a pod the kubelet failed (activeDeadlineSeconds): its
	// phase is Failed whatever the exit codes.
	Failed bool
	// Reason and Message override the pod's (e.g. DeadlineExceeded).
	Reason, Message string
}

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func terminated(a *Attempt) *v1.ContainerStateTerminated {
	reason := "Error"
	switch {
	case a.OOMKilled:
		reason = "OOMKilled"
	case a.ExitCode == 0:
		reason = "Completed"
	}
	return &v1.ContainerStateTerminated{ExitCode: a.ExitCode, Signal: a.Signal, Reason: reason,
		StartedAt: ts(a.StartedAt), FinishedAt: ts(a.FinishedAt), ContainerId: a.ID}
}

// ContainerStatus builds one container's status.
func ContainerStatus(name, image string, c Container) *v1.ContainerStatus {
	cs := &v1.ContainerStatus{Name: name, Image: image, RestartCount: c.Restarts, State: &v1.ContainerState{}}
	started := false
	if c.Previous != nil && c.Previous.Exited {
		cs.LastState = &v1.ContainerState{Terminated: terminated(c.Previous)}
	}
	switch cur := c.Current; {
	case cur == nil:
		reason := c.WaitingReason
		if reason == "" {
			reason = "ContainerCreating"
		}
		cs.State.Waiting = &v1.ContainerStateWaiting{Reason: reason, Message: c.WaitingMessage}
	case !cur.Exited:
		cs.ContainerId = cur.ID
		cs.State.Running = &v1.ContainerStateRunning{StartedAt: ts(cur.StartedAt)}
		cs.Ready = c.Ready
		started = c.Started
	case c.WaitingReason != "":
		// Exited and going to restart: waiting, with the exit as lastState.
		cs.ContainerId = cur.ID
		cs.State.Waiting = &v1.ContainerStateWaiting{Reason: c.WaitingReason, Message: c.WaitingMessage}
		cs.LastState = &v1.ContainerState{Terminated: terminated(cur)}
	default:
		cs.ContainerId = cur.ID
		cs.State.Terminated = terminated(cur)
	}
	cs.Started = &started
	return cs
}

// Phase is Kubernetes' getPhase over the regular containers (reference §1).
func Phase(spec *v1.PodSpec, statuses []*v1.ContainerStatus, terminal bool) string {
	byName := map[string]*v1.ContainerStatus{}
	for _, s := range statuses {
		byName[s.Name] = s
	}
	var running, stopped, succeeded, waiting, unknown int
	for _, c := range spec.GetContainers() {
		s := byName[c.Name]
		switch {
		case s == nil:
			unknown++
		case s.GetState().GetRunning() != nil:
			running++
		case s.GetState().GetTerminated() != nil:
			stopped++
			if s.GetState().GetTerminated().GetExitCode() == 0 {
				succeeded++
			}
		case s.GetState().GetWaiting() != nil && s.GetLastState().GetTerminated() != nil:
			stopped++
		case s.GetState().GetWaiting() != nil:
			waiting++
		default:
			unknown++
		}
	}
	switch {
	case waiting > 0:
		return "Pending"
	case running > 0 && unknown == 0:
		return "Running"
	case running == 0 && stopped > 0 && unknown == 0:
		if terminal {
			if stopped == succeeded {
				return "Succeeded"
			}
			return "Failed"
		}
		switch spec.GetRestartPolicy() {
		case "Always":
			return "Running"
		}
		if stopped == succeeded {
			return "Succeeded"
		}
		if spec.GetRestartPolicy() == "Never" {
			return "Failed"
		}
		return "Running"
	}
	return "Pending"
}

// IsTerminal reports a Succeeded or Failed phase.
func IsTerminal(phase string) bool { return phase == "Succeeded" || phase == "Failed" }

// ComputePodStatus builds the pod's status. The previous status's
// condition transition times are kept where a condition did not change, and
// a terminal phase never goes back.
func ComputePodStatus(in Input) *v1.PodStatus {
	pod := in.Pod
	old := pod.GetStatus()
	st := &v1.PodStatus{HostIp: in.HostIP, PodIp: in.HostIP, QosClass: old.GetQosClass(), StartTime: ts(in.StartTime),
		Reason: in.Reason, Message: in.Message}
	var unready []string
	for _, c := range pod.GetSpec().GetContainers() {
		cs := ContainerStatus(c.Name, c.Image, in.Containers[c.Name])
		st.ContainerStatuses = append(st.ContainerStatuses, cs)
		if !cs.Ready {
			unready = append(unready, c.Name)
		}
	}
	st.Phase = Phase(pod.GetSpec(), st.ContainerStatuses, in.Terminal)
	if in.Failed {
		st.Phase = "Failed"
	}
	if IsTerminal(old.GetPhase()) && !IsTerminal(st.Phase) {
		st.Phase = old.GetPhase() // terminal phases are sticky
	}
	if in.Reason == "" && IsTerminal(old.GetPhase()) {
		st.Reason, st.Message = old.GetReason(), old.GetMessage()
	}
	sort.Strings(unready)
	ready := cond("Ready", true, "", "")
	containersReady := cond("ContainersReady", true, "", "")
	switch {
	case st.Phase == "Succeeded":
		ready = cond("Ready", false, "PodCompleted", "")
		containersReady = cond("ContainersReady", false, "PodCompleted", "")
	case st.Phase == "Failed":
		ready = cond("Ready", false, "PodFailed", "")
		containersReady = cond("ContainersReady", false, "PodFailed", "")
	case len(unready) > 0:
		msg := fmt.Sprintf("containers with unready status: [%s]", strings.Join(unready, " "))
		ready = cond("Ready", false, "ContainersNotReady", msg)
		containersReady = cond("ContainersReady", false, "ContainersNotReady", msg)
	}
	conds := []*v1.PodCondition{
		cond("PodReadyToStartContainers", true, "", ""),
		cond("Initialized", true, "", ""),
		ready,
		containersReady,
		cond("PodScheduled", true, "", ""),
	}
	for _, c := range conds {
		c.LastTransitionTime = ts(in.Now)
		for _, o := range old.GetConditions() {
			if o.Type == c.Type && o.Status == c.Status && o.LastTransitionTime != nil {
				c.LastTransitionTime = o.LastTransitionTime
			}
		}
	}
	st.Conditions = conds
	return st
}

func cond(typ string, ok bool, reason, msg string) *v1.PodCondition {
	s := "False"
	if ok {
		s = "True"
	}
	return &v1.PodCondition{Type: typ, Status: s, Reason: reason, Message: msg}
}
