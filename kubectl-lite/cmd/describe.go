package cmd

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"
	"k8s.io/apimachinery/pkg/util/duration"

	"github.com/kubelite/kubelite/internal/api"
	"github.com/kubelite/kubelite/internal/client"
	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

func newDescribeCommand(g *globals) *cobra.Command {
	var selector string
	c := &cobra.Command{
		Use:   "describe TYPE [NAME...] | TYPE/NAME",
		Short: "Show the details of objects, with their events",
		RunE: func(_ *cobra.Command, args []string) error {
			return runDescribe(g, args, selector)
		},
	}
	c.Flags().StringVarP(&selector, "selector", "l", "", "label selector")
	return c
}

func runDescribe(g *globals, args []string, selector string) error {
	reqs, err := parseTargets(args)
	if err != nil {
		return err
	}
	c, err := g.client()
	if err != nil {
		return err
	}
	first := true
	for _, r := range reqs {
		ctx, cancel := g.ctx()
		res := client.Dynamic(c, r.kind)
		var objs []api.Object
		if len(r.names) == 0 {
			objs, _, err = res.List(ctx, &v1.ListRequest{Namespace: g.ns(), LabelSelector: selector})
			if err != nil {
				cancel()
				return err
			}
			sortByName(objs)
		}
		for _, n := range r.names {
			o, err := res.Get(ctx, g.ns(), n)
			if err != nil {
				cancel()
				return err
			}
			objs = append(objs, o)
		}
		cancel()
		for _, o := range objs {
			if !first {
				fmt.Fprintln(g.out)
			}
			first = false
			if err := describeObject(g, c, o); err != nil {
				return err
			}
		}
	}
	return nil
}

// section writes "Key:  value" lines aligned like kubectl describe.
type section struct{ w *tabwriter.Writer }

func newSection(out io.Writer) *section {
	return &section{w: tabwriter.NewWriter(out, 0, 8, 2, ' ', 0)}
}

func (s *section) line(indent int, key string, value any) {
	fmt.Fprintf(s.w, "%s%s:\t%v\n", strings.Repeat("  ", indent), key, value)
}

func (s *section) text(indent int, text string) {
	fmt.Fprintf(s.w, "%s%s\n", strings.Repeat("  ", indent), text)
}

func (s *section) flush() { _ = s.w.Flush() }

func mapLines(s *section, indent int, key string, m map[string]string) {
	if len(m) == 0 {
		s.line(indent, key, "<none>")
		return
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		name := key + ":"
		if i > 0 {
			name = ""
		}
		fmt.Fprintf(s.w, "%s%s\t%s=%s\n", strings.Repeat("  ", indent), name, k, m[k])
	}
}

func ts(t *timestamppb.Timestamp) string {
	if t == nil {
		return "<unset>"
	}
	return t.AsTime().Local().Format(time.RFC1123Z)
}

func describeObject(g *globals, c *client.Client, o api.Object) error {
	s := newSection(g.out)
	m := o.GetMetadata()
	s.line(0, "Name", m.Name)
	if m.Namespace != "" {
		s.line(0, "Namespace", m.Namespace)
	}
	switch x := o.(type) {
	case *v1.Pod:
		describePod(s, x)
	case *v1.Node:
		describeNode(g, c, s, x)
	case *v1.Deployment:
		describeDeployment(g, c, s, x)
	case *v1.ReplicaSet:
		describeReplicaSet(s, x)
	case *v1.StatefulSet:
		if err := describeStatefulSet(g, c, s, x); err != nil {
			return err
		}
	case *v1.PersistentVolumeClaim:
		if err := describeClaim(g, c, s, x); err != nil {
			return err
		}
	default:
		mapLines(s, 0, "Labels", m.Labels)
		mapLines(s, 0, "Annotations", m.Annotations)
		s.line(0, "CreationTimestamp", ts(m.CreationTimestamp))
		s.flush()
		y, err := api.MarshalYAML(o)
		if err != nil {
			return err
		}
		fmt.Fprintf(g.out, "Object:\n%s", indentText(string(y), "  "))
	}
	s.flush()
	return describeEvents(g, c, o)
}

func indentText(t, prefix string) string {
	lines := strings.Split(strings.TrimRight(t, "\n"), "\n")
	for i, l := range lines {
		lines[i] = prefix + l
	}
	return strings.Join(lines, "\n") + "\n"
}

func describePod(s *section, p *v1.Pod) {
	m, spec, st := p.Metadata, p.GetSpec(), p.GetStatus()
	s.line(0, "Node", orNone(spec.GetNodeName()))
	if st.GetStartTime() != nil {
		s.line(0, "Start Time", ts(st.StartTime))
	}
	mapLines(s, 0, "Labels", m.Labels)
	mapLines(s, 0, "Annotations", m.Annotations)
	status := st.GetPhase()
	if m.DeletionTimestamp != nil {
		left := time.Until(m.DeletionTimestamp.AsTime()).Round(time.Second)
		status = fmt.Sprintf("Terminating (lasts %s)", duration.HumanDuration(max(left, 0)))
		s.line(0, "Status", status)
		s.line(0, "Termination Grace Period", fmt.Sprintf("%ds", m.GetDeletionGracePeriodSeconds()))
	} else {
		s.line(0, "Status", status)
	}
	if st.GetReason() != "" {
		s.line(0, "Reason", st.Reason)
	}
	if st.GetMessage() != "" {
		s.line(0, "Message", st.Message)
	}
	s.line(0, "IP", st.GetPodIp())
	for _, or := range m.OwnerReferences {
		if or.GetController() {
			s.line(0, "Controlled By", or.Kind+"/"+or.Name)
		}
	}
	s.text(0, "Containers:")
	statuses := map[string]*v1.ContainerStatus{}
	for _, cs := range st.GetContainerStatuses() {
		statuses[cs.Name] = cs
	}
	for _, c := range spec.GetContainers() {
		s.text(1, c.Name+":")
		if c.Image != "" {
			s.line(2, "Image", c.Image)
		}
		s.text(2, "Command:")
		for _, a := range c.Command {
			s.text(3, a)
		}
		if len(c.Args) > 0 {
			s.text(2, "Args:")
			for _, a := range c.Args {
				s.text(3, a)
			}
		}
		cs := statuses[c.Name]
		describeState(s, "State", cs.GetState())
		if ls := cs.GetLastState(); ls != nil && (ls.Terminated != nil || ls.Running != nil || ls.Waiting != nil) {
			describeState(s, "Last State", ls)
		}
		s.line(2, "Ready", cs.GetReady())
		s.line(2, "Restart Count", cs.GetRestartCount())
		if l := c.GetResources().GetLimits(); len(l) > 0 {
			s.text(2, "Limits:")
			for k, v := range l {
				s.line(3, k, v)
			}
		}
		if r := c.GetResources().GetRequests(); len(r) > 0 {
			s.text(2, "Requests:")
			for k, v := range r {
				s.line(3, k, v)
			}
		}
		for name, pr := range map[string]*v1.Probe{"Liveness": c.LivenessProbe, "Readiness": c.ReadinessProbe, "Startup": c.StartupProbe} {
			if pr != nil {
				s.line(2, name, probeString(pr))
			}
		}
		if len(c.Env) == 0 {
			s.line(2, "Environment", "<none>")
		} else {
			s.text(2, "Environment:")
			for _, e := range c.Env {
				s.line(3, e.Name, e.Value)
			}
		}
	}
	s.text(0, "Conditions:")
	s.text(1, "Type\tStatus")
	for _, c := range st.GetConditions() {
		s.text(1, c.Type+"\t"+c.Status)
	}
	s.line(0, "QoS Class", st.GetQosClass())
	mapLines(s, 0, "Node-Selectors", spec.GetNodeSelector())
	var tols []string
	for _, t := range spec.GetTolerations() {
		tols = append(tols, tolerationString(t))
	}
	if len(tols) == 0 {
		tols = []string{"<none>"}
	}
	s.line(0, "Tolerations", strings.Join(tols, "\n\t"))
}

func tolerationString(t *v1.Toleration) string {
	out := t.Key
	if t.Operator == "Exists" {
		out += ":" + t.Effect + " op=Exists"
	} else {
		out += "=" + t.Value + ":" + t.Effect
	}
	if t.TolerationSeconds != nil {
		out += fmt.Sprintf(" for %ds", *t.TolerationSeconds)
	}
	return out
}

func probeString(p *v1.Probe) string {
	var h string
	switch {
	case p.Exec != nil:
		h = "exec " + fmt.Sprint(p.Exec.Command)
	case p.HttpGet != nil:
		h = fmt.Sprintf("http-get %s://%s:%s%s", strings.ToLower(p.HttpGet.Scheme), orDefault(p.HttpGet.Host, ""), p.HttpGet.Port, p.HttpGet.Path)
	case p.TcpSocket != nil:
		h = "tcp-socket " + orDefault(p.TcpSocket.Host, "") + ":" + p.TcpSocket.Port
	}
	return fmt.Sprintf("%s delay=%ds timeout=%ds period=%ds #success=%d #failure=%d", h, p.InitialDelaySeconds, p.TimeoutSeconds, p.PeriodSeconds, p.SuccessThreshold, p.FailureThreshold)
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func describeState(s *section, label string, st *v1.ContainerState) {
	switch {
	case st.GetRunning() != nil:
		s.line(2, label, "Running")
		s.line(3, "Started", ts(st.Running.StartedAt))
	case st.GetTerminated() != nil:
		t := st.Terminated
		s.line(2, label, "Terminated")
		s.line(3, "Reason", t.Reason)
		if t.Message != "" {
			s.line(3, "Message", t.Message)
		}
		s.line(3, "Exit Code", t.ExitCode)
		if t.Signal != 0 {
			s.line(3, "Signal", t.Signal)
		}
		s.line(3, "Started", ts(t.StartedAt))
		s.line(3, "Finished", ts(t.FinishedAt))
	case st.GetWaiting() != nil:
		s.line(2, label, "Waiting")
		s.line(3, "Reason", st.Waiting.Reason)
		if st.Waiting.Message != "" {
			s.line(3, "Message", st.Waiting.Message)
		}
	default:
		s.line(2, label, "Waiting")
	}
}

func describeNode(g *globals, c *client.Client, s *section, n *v1.Node) {
	m, spec, st := n.Metadata, n.GetSpec(), n.GetStatus()
	mapLines(s, 0, "Labels", m.Labels)
	mapLines(s, 0, "Annotations", m.Annotations)
	s.line(0, "CreationTimestamp", ts(m.CreationTimestamp))
	var taints []string
	for _, t := range spec.GetTaints() {
		v := t.Key
		if t.Value != "" {
			v += "=" + t.Value
		}
		taints = append(taints, v+":"+t.Effect)
	}
	if len(taints) == 0 {
		taints = []string{"<none>"}
	}
	s.line(0, "Taints", strings.Join(taints, "\n\t"))
	s.line(0, "Unschedulable", spec.GetUnschedulable())
	s.text(0, "Conditions:")
	s.text(1, "Type\tStatus\tLastHeartbeatTime\tLastTransitionTime\tReason\tMessage")
	for _, c := range st.GetConditions() {
		s.text(1, strings.Join([]string{c.Type, c.Status, ts(c.LastHeartbeatTime), ts(c.LastTransitionTime), c.Reason, c.Message}, "\t"))
	}
	s.text(0, "Addresses:")
	for _, a := range st.GetAddresses() {
		s.line(1, a.Type, a.Address)
	}
	for _, part := range []struct {
		name string
		m    map[string]string
	}{{"Capacity", st.GetCapacity()}, {"Allocatable", st.GetAllocatable()}} {
		s.text(0, part.name+":")
		keys := make([]string, 0, len(part.m))
		for k := range part.m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			s.line(1, k, part.m[k])
		}
	}
	info := st.GetNodeInfo()
	s.text(0, "System Info:")
	s.line(1, "Machine ID", info.GetMachineId())
	s.line(1, "Boot ID", info.GetBootId())
	s.line(1, "Kernel Version", info.GetKernelVersion())
	s.line(1, "OS Image", info.GetOsImage())
	s.line(1, "Operating System", info.GetOperatingSystem())
	s.line(1, "Architecture", info.GetArchitecture())
	s.line(1, "Kubelet Version", info.GetKubeletVersion())
	ctx, cancel := g.ctx()
	defer cancel()
	pods, _, err := c.Pods().List(ctx, &v1.ListRequest{FieldSelector: "spec.nodeName=" + m.Name})
	if err != nil {
		return
	}
	var active []*v1.Pod
	for _, p := range pods {
		if !api.IsPodTerminal(p) {
			active = append(active, p)
		}
	}
	s.text(0, fmt.Sprintf("Non-terminated Pods:\t(%d in total)", len(active)))
	s.text(1, "Namespace\tName\tCPU Requests\tMemory Requests\tAge")
	now := time.Now()
	for _, p := range active {
		cpu, mem := "0", "0"
		for _, c := range p.GetSpec().GetContainers() {
			if v, ok := c.GetResources().GetRequests()["cpu"]; ok {
				cpu = v
			}
			if v, ok := c.GetResources().GetRequests()["memory"]; ok {
				mem = v
			}
		}
		s.text(1, strings.Join([]string{p.Metadata.Namespace, p.Metadata.Name, cpu, mem, age(p.Metadata.CreationTimestamp, now)}, "\t"))
	}
}

// describeEvents prints the object's events oldest first, as kubectl does.
func describeEvents(g *globals, c *client.Client, o api.Object) error {
	ctx, cancel := g.ctx()
	defer cancel()
	m := o.GetMetadata()
	ns := m.Namespace
	if ns == "" {
		ns = api.DefaultNamespace
	}
	events, _, err := c.Events().List(ctx, &v1.ListRequest{
		Namespace:     ns,
		FieldSelector: "involvedObject.name=" + m.Name + ",involvedObject.kind=" + api.KindOf(o).Kind,
	})
	if err != nil {
		return err
	}
	if len(events) == 0 {
		fmt.Fprintln(g.out, "Events:  <none>")
		return nil
	}
	sort.SliceStable(events, func(i, j int) bool { return eventTime(events[i]).Before(eventTime(events[j])) })
	fmt.Fprintln(g.out, "Events:")
	w := tabwriter.NewWriter(g.out, 0, 8, 2, ' ', 0)
	fmt.Fprintln(w, "  Type\tReason\tAge\tFrom\tMessage")
	fmt.Fprintln(w, "  ----\t------\t----\t----\t-------")
	now := time.Now()
	for _, e := range events {
		a := duration.HumanDuration(now.Sub(eventTime(e)))
		if e.Count > 1 && e.FirstTimestamp != nil {
			a = fmt.Sprintf("%s (x%d over %s)", a, e.Count, duration.HumanDuration(now.Sub(e.FirstTimestamp.AsTime())))
		}
		fmt.Fprintf(w, "  %s\t%s\t%s\t%s\t%s\n", e.Type, e.Reason, a, e.GetSource().GetComponent(), e.Message)
	}
	return w.Flush()
}

func selectorString(sel *v1.LabelSelector) string {
	ls, err := api.LabelSelectorAsSelector(sel)
	if err != nil {
		return "<invalid>"
	}
	return ls.String()
}

func describeTemplate(s *section, t *v1.PodTemplateSpec) {
	s.text(0, "Pod Template:")
	mapLines(s, 1, "Labels", t.GetMetadata().GetLabels())
	s.text(1, "Containers:")
	for _, c := range t.GetSpec().GetContainers() {
		s.text(2, c.Name+":")
		if c.Image != "" {
			s.line(3, "Image", c.Image)
		}
		s.line(3, "Command", strings.Join(append(append([]string{}, c.Command...), c.Args...), " "))
		if c.ReadinessProbe != nil {
			s.line(3, "Readiness", probeString(c.ReadinessProbe))
		}
		if len(c.Env) > 0 {
			s.text(3, "Environment:")
			for _, e := range c.Env {
				s.line(4, e.Name, e.Value)
			}
		}
	}
}

func describeDeployment(g *globals, c *client.Client, s *section, d *v1.Deployment) {
	m, spec, st := d.Metadata, d.GetSpec(), d.GetStatus()
	s.line(0, "CreationTimestamp", ts(m.CreationTimestamp))
	mapLines(s, 0, "Labels", m.Labels)
	mapLines(s, 0, "Annotations", m.Annotations)
	s.line(0, "Selector", selectorString(spec.GetSelector()))
	s.line(0, "Replicas", fmt.Sprintf("%d desired | %d updated | %d total | %d available | %d unavailable",
		spec.GetReplicas(), st.GetUpdatedReplicas(), st.GetReplicas(), st.GetAvailableReplicas(), st.GetUnavailableReplicas()))
	s.line(0, "StrategyType", spec.GetStrategy().GetType())
	s.line(0, "MinReadySeconds", spec.GetMinReadySeconds())
	if ru := spec.GetStrategy().GetRollingUpdate(); ru != nil {
		s.line(0, "RollingUpdateStrategy", fmt.Sprintf("%s max unavailable, %s max surge", ru.MaxUnavailable, ru.MaxSurge))
	}
	if spec.Paused {
		s.line(0, "Paused", "true")
	}
	describeTemplate(s, spec.GetTemplate())
	s.text(0, "Conditions:")
	s.text(1, "Type\tStatus\tReason")
	for _, cnd := range st.GetConditions() {
		s.text(1, cnd.Type+"\t"+cnd.Status+"\t"+cnd.Reason)
	}
	ctx, cancel := g.ctx()
	defer cancel()
	rss, _, err := c.ReplicaSets().List(ctx, &v1.ListRequest{Namespace: m.Namespace})
	if err != nil {
		return
	}
	var old []string
	newRS := "<none>"
	for _, rs := range rss {
		if ref := rs.Metadata.OwnerReferences; len(ref) == 0 || ref[0].Uid != m.Uid {
			continue
		}
		desc := fmt.Sprintf("%s (%d/%d replicas created)", rs.Metadata.Name, rs.GetStatus().GetReplicas(), rs.Spec.GetReplicas())
		if rs.Metadata.GetAnnotations()["deployment.kubernetes.io/revision"] == m.GetAnnotations()["deployment.kubernetes.io/revision"] {
			newRS = desc
		} else if rs.Spec.GetReplicas() > 0 || rs.GetStatus().GetReplicas() > 0 {
			old = append(old, desc)
		}
	}
	if len(old) == 0 {
		old = []string{"<none>"}
	}
	s.line(0, "OldReplicaSets", strings.Join(old, ", "))
	s.line(0, "NewReplicaSet", newRS)
}

func describeReplicaSet(s *section, rs *v1.ReplicaSet) {
	m, spec, st := rs.Metadata, rs.GetSpec(), rs.GetStatus()
	s.line(0, "Selector", selectorString(spec.GetSelector()))
	mapLines(s, 0, "Labels", m.Labels)
	mapLines(s, 0, "Annotations", m.Annotations)
	for _, or := range m.OwnerReferences {
		if or.GetController() {
			s.line(0, "Controlled By", or.Kind+"/"+or.Name)
		}
	}
	s.line(0, "Replicas", fmt.Sprintf("%d current / %d desired", st.GetReplicas(), spec.GetReplicas()))
	s.line(0, "Pods Status", fmt.Sprintf("%d Ready / %d Available", st.GetReadyReplicas(), st.GetAvailableReplicas()))
	describeTemplate(s, spec.GetTemplate())
}

func describeStatefulSet(g *globals, c *client.Client, s *section, st *v1.StatefulSet) error {
	m, spec, status := st.Metadata, st.GetSpec(), st.GetStatus()
	s.line(0, "CreationTimestamp", ts(m.CreationTimestamp))
	s.line(0, "Selector", selectorString(spec.GetSelector()))
	mapLines(s, 0, "Labels", m.Labels)
	mapLines(s, 0, "Annotations", m.Annotations)
	s.line(0, "Replicas", fmt.Sprintf("%d desired | %d total", spec.GetReplicas(), status.GetReplicas()))
	s.line(0, "Update Strategy", spec.GetUpdateStrategy().GetType())
	if ru := spec.GetUpdateStrategy().GetRollingUpdate(); ru != nil {
		s.line(1, "Partition", ru.GetPartition())
		if ru.MaxUnavailable != "" {
			s.line(1, "Max Unavailable", ru.MaxUnavailable)
		}
	}
	s.line(0, "Pod Management Policy", spec.GetPodManagementPolicy())
	s.line(0, "Pods Status", fmt.Sprintf("%d Ready / %d Available / %d Current / %d Updated",
		status.GetReadyReplicas(), status.GetAvailableReplicas(), status.GetCurrentReplicas(), status.GetUpdatedReplicas()))
	s.line(0, "Current Revision", orNone(status.GetCurrentRevision()))
	s.line(0, "Update Revision", orNone(status.GetUpdateRevision()))
	describeTemplate(s, spec.GetTemplate())
	if err := describeSetClaims(g, c, s, st); err != nil {
		return err
	}
	p := spec.GetPersistentVolumeClaimRetentionPolicy()
	s.line(0, "Claim Retention", fmt.Sprintf("whenDeleted %s, whenScaled %s", p.GetWhenDeleted(), p.GetWhenScaled()))
	return nil
}
