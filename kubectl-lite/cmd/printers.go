package cmd

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"
	"k8s.io/apimachinery/pkg/util/duration"

	"github.com/kubelite/kubelite/internal/api"
	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

// table is one kind's columns, as kubectl prints them.
type table struct {
	headers []string
	wide    []string
	row     func(o api.Object, now time.Time) []string
	wideRow func(o api.Object, now time.Time) []string
}

func age(t *timestamppb.Timestamp, now time.Time) string {
	if t == nil {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t.AsTime()))
}

func tableFor(k *api.Kind) table {
	switch k.Kind {
	case "Pod":
		return table{
			headers: []string{"NAME", "READY", "STATUS", "RESTARTS", "AGE"},
			wide:    []string{"IP", "NODE", "NOMINATED NODE", "READINESS GATES"},
			row: func(o api.Object, now time.Time) []string {
				p := o.(*v1.Pod)
				ready, status, restarts := podColumns(p, now)
				return []string{p.Metadata.Name, ready, status, restarts, age(p.Metadata.CreationTimestamp, now)}
			},
			wideRow: func(o api.Object, _ time.Time) []string {
				p := o.(*v1.Pod)
				return []string{orNone(p.GetStatus().GetPodIp()), orNone(p.GetSpec().GetNodeName()), "<none>", "<none>"}
			},
		}
	case "Node":
		return table{
			headers: []string{"NAME", "STATUS", "ROLES", "AGE", "VERSION"},
			wide:    []string{"INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"},
			row: func(o api.Object, now time.Time) []string {
				n := o.(*v1.Node)
				return []string{n.Metadata.Name, nodeStatus(n), "<none>", age(n.Metadata.CreationTimestamp, now), orNone(n.GetStatus().GetNodeInfo().GetKubeletVersion())}
			},
			wideRow: func(o api.Object, _ time.Time) []string {
				n := o.(*v1.Node)
				ip := "<none>"
				for _, a := range n.GetStatus().GetAddresses() {
					if a.Type == "InternalIP" {
						ip = a.Address
					}
				}
				info := n.GetStatus().GetNodeInfo()
				return []string{ip, "<none>", orNone(info.GetOsImage()), orNone(info.GetKernelVersion()), "kubelite-process"}
			},
		}
	case "Event":
		return table{
			headers: []string{"LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"},
			row: func(o api.Object, now time.Time) []string {
				e := o.(*v1.Event)
				io := e.GetInvolvedObject()
				last := e.LastTimestamp
				if last == nil {
					last = e.FirstTimestamp
				}
				return []string{age(last, now), e.Type, e.Reason, strings.ToLower(io.GetKind()) + "/" + io.GetName(), e.Message}
			},
		}
	case "Lease":
		return table{
			headers: []string{"NAME", "HOLDER", "AGE"},
			row: func(o api.Object, now time.Time) []string {
				l := o.(*v1.Lease)
				return []string{l.Metadata.Name, l.GetSpec().GetHolderIdentity(), age(l.Metadata.CreationTimestamp, now)}
			},
		}
	case "ReplicaSet":
		return table{
			headers: []string{"NAME", "DESIRED", "CURRENT", "READY", "AGE"},
			row: func(o api.Object, now time.Time) []string {
				r := o.(*v1.ReplicaSet)
				return []string{r.Metadata.Name, itoa(r.GetSpec().GetReplicas()), itoa(r.GetStatus().GetReplicas()), itoa(r.GetStatus().GetReadyReplicas()), age(r.Metadata.CreationTimestamp, now)}
			},
		}
	case "Deployment":
		return table{
			headers: []string{"NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"},
			row: func(o api.Object, now time.Time) []string {
				d := o.(*v1.Deployment)
				s := d.GetStatus()
				return []string{d.Metadata.Name, fmt.Sprintf("%d/%d", s.GetReadyReplicas(), d.GetSpec().GetReplicas()), itoa(s.GetUpdatedReplicas()), itoa(s.GetAvailableReplicas()), age(d.Metadata.CreationTimestamp, now)}
			},
		}
	case "StatefulSet":
		return table{
			headers: []string{"NAME", "READY", "AGE"},
			row: func(o api.Object, now time.Time) []string {
				s := o.(*v1.StatefulSet)
				return []string{s.Metadata.Name, fmt.Sprintf("%d/%d", s.GetStatus().GetReadyReplicas(), s.GetSpec().GetReplicas()), age(s.Metadata.CreationTimestamp, now)}
			},
		}
	case "PersistentVolumeClaim":
		return claimTable()
	case "ControllerRevision":
		return table{
			headers: []string{"NAME", "CONTROLLER", "REVISION", "AGE"},
			row: func(o api.Object, now time.Time) []string {
				r := o.(*v1.ControllerRevision)
				ctrl := "<none>"
				for _, or := range r.Metadata.OwnerReferences {
					if or.GetController() {
						ctrl = strings.ToLower(or.Kind) + ".apps/" + or.Name
					}
				}
				return []string{r.Metadata.Name, ctrl, strconv.FormatInt(r.Revision, 10), age(r.Metadata.CreationTimestamp, now)}
			},
		}
	}
	return table{
		headers: []string{"NAME", "AGE"},
		row: func(o api.Object, now time.Time) []string {
			return []string{o.GetMetadata().GetName(), age(o.GetMetadata().GetCreationTimestamp(), now)}
		},
	}
}

func itoa(i int32) string { return strconv.Itoa(int(i)) }

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

// podColumns computes READY, STATUS and RESTARTS as kubectl's printPod does.
// STATUS is a display string, not the phase: CrashLoopBackOff, Completed,
// Terminating and the like come from container states and deletion.
func podColumns(p *v1.Pod, now time.Time) (ready, status, restarts string) {
	st := p.GetStatus()
	reason := st.GetPhase()
	if st.GetReason() != "" {
		reason = st.GetReason()
	}
	total := len(p.GetSpec().GetContainers())
	readyN, restartN := 0, int32(0)
	var lastRestart *timestamppb.Timestamp
	hasRunning := false
	cs := st.GetContainerStatuses()
	for i := len(cs) - 1; i >= 0; i-- {
		c := cs[i]
		restartN += c.RestartCount
		if t := c.GetLastState().GetTerminated(); t != nil && t.FinishedAt != nil {
			if lastRestart == nil || t.FinishedAt.AsTime().After(lastRestart.AsTime()) {
				lastRestart = t.FinishedAt
			}
		}
		switch s := c.GetState(); {
		case s.GetWaiting() != nil && s.GetWaiting().GetReason() != "":
			reason = s.GetWaiting().GetReason()
		case s.GetTerminated() != nil && s.GetTerminated().GetReason() != "":
			reason = s.GetTerminated().GetReason()
		case s.GetTerminated() != nil:
			if sig := s.GetTerminated().GetSignal(); sig != 0 {
				reason = fmt.Sprintf("Signal:%d", sig)
			} else {
				reason = fmt.Sprintf("ExitCode:%d", s.GetTerminated().GetExitCode())
			}
		case c.Ready && s.GetRunning() != nil:
			hasRunning = true
			readyN++
		}
	}
	if reason == "Completed" && hasRunning {
		reason = "NotReady"
		for _, cond := range st.GetConditions() {
			if cond.Type == "Ready" && cond.Status == "True" {
				reason = "Running"
			}
		}
	}
	phase := st.GetPhase()
	if p.GetMetadata().GetDeletionTimestamp() != nil {
		if st.GetReason() == "NodeLost" {
			reason = "Unknown"
		} else if phase != "Succeeded" && phase != "Failed" {
			reason = "Terminating"
		}
	}
	restarts = strconv.Itoa(int(restartN))
	if restartN > 0 && lastRestart != nil {
		restarts = fmt.Sprintf("%d (%s ago)", restartN, duration.HumanDuration(now.Sub(lastRestart.AsTime())))
	}
	return fmt.Sprintf("%d/%d", readyN, total), reason, restarts
}

func nodeStatus(n *v1.Node) string {
	status := "Unknown"
	for _, c := range n.GetStatus().GetConditions() {
		if c.Type == "Ready" {
			switch c.Status {
			case "True":
				status = "Ready"
			case "False":
				status = "NotReady"
			default:
				status = "Unknown"
			}
		}
	}
	if n.GetSpec().GetUnschedulable() {
		status += ",SchedulingDisabled"
	}
	return status
}

// printer writes objects in one output format.
type printer struct {
	format   string // "", "wide", "json", "yaml", "name"
	allNS    bool
	withKind bool // several kinds: names as "deployment.apps/web"
	noHead   bool
	w        *tabwriter.Writer
	out      io.Writer
	started  bool
}

func newPrinter(format string, out io.Writer, allNS bool) (*printer, error) {
	switch format {
	case "", "wide", "json", "yaml", "name":
	default:
		return nil, usagef("--output %q: expected one of json, yaml, name, wide", format)
	}
	return &printer{format: format, out: out, allNS: allNS, w: tabwriter.NewWriter(out, 3, 0, 3, ' ', 0)}, nil
}

// printRows prints objects of one kind as a table (header once).
func (p *printer) printRows(k *api.Kind, objs []api.Object) {
	now := time.Now()
	t := tableFor(k)
	if !p.started && !p.noHead {
		h := t.headers
		if p.allNS && k.Namespaced {
			h = append([]string{"NAMESPACE"}, h...)
		}
		if p.format == "wide" {
			h = append(h, t.wide...)
		}
		fmt.Fprintln(p.w, strings.Join(h, "\t"))
		p.started = true
	}
	for _, o := range objs {
		cols := t.row(o, now)
		if p.withKind && k.Kind != "Event" {
			cols[0] = qualified(k, cols[0])
		}
		if p.allNS && k.Namespaced {
			cols = append([]string{o.GetMetadata().GetNamespace()}, cols...)
		}
		if p.format == "wide" && t.wideRow != nil {
			cols = append(cols, t.wideRow(o, now)...)
		}
		fmt.Fprintln(p.w, strings.Join(cols, "\t"))
	}
	_ = p.w.Flush()
}

// print writes objects; single means one named object (not a List).
func (p *printer) print(k *api.Kind, objs []api.Object, single bool) error {
	switch p.format {
	case "", "wide":
		p.printRows(k, objs)
	case "name":
		for _, o := range objs {
			fmt.Fprintln(p.out, strings.ToLower(k.Kind)+"/"+o.GetMetadata().GetName())
		}
	case "json", "yaml":
		var doc any
		if single && len(objs) == 1 {
			m, err := api.ToMap(objs[0])
			if err != nil {
				return err
			}
			doc = m
		} else {
			items := make([]any, 0, len(objs))
			for _, o := range objs {
				m, err := api.ToMap(o)
				if err != nil {
					return err
				}
				items = append(items, m)
			}
			doc = map[string]any{"apiVersion": "v1", "kind": "List", "items": items, "metadata": map[string]any{"resourceVersion": ""}}
		}
		b, err := json.MarshalIndent(doc, "", "    ")
		if err != nil {
			return err
		}
		if p.format == "yaml" {
			b, err = jsonToYAML(b)
			if err != nil {
				return err
			}
			fmt.Fprint(p.out, string(b))
			return nil
		}
		fmt.Fprintln(p.out, string(b))
	}
	return nil
}

func sortByName(objs []api.Object) {
	sort.Slice(objs, func(i, j int) bool {
		a, b := objs[i].GetMetadata(), objs[j].GetMetadata()
		if a.GetNamespace() != b.GetNamespace() {
			return a.GetNamespace() < b.GetNamespace()
		}
		return a.GetName() < b.GetName()
	})
}
