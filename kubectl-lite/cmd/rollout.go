package cmd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"

	"github.com/kubelite/kubelite/internal/api"
	"github.com/kubelite/kubelite/internal/client"
	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

const (
	revisionAnnotation = "deployment.kubernetes.io/revision"
	templateHashLabel  = "pod-template-hash"
)

func newRolloutCommand(g *globals) *cobra.Command {
	r := &cobra.Command{Use: "rollout", Short: "Manage the rollout of a Deployment"}
	var timeout time.Duration
	status := &cobra.Command{
		Use:   "status (TYPE/NAME | TYPE NAME)",
		Short: "Watch a rollout until it completes",
		RunE: func(_ *cobra.Command, args []string) error {
			k, name, err := workloadTarget(args, "Deployment", "StatefulSet")
			if err != nil {
				return err
			}
			return rolloutStatus(g, k, name, timeout)
		},
	}
	status.Flags().DurationVar(&timeout, "timeout", 0, "give up after this long (0: never)")
	var revision int64
	history := &cobra.Command{
		Use:   "history (TYPE/NAME | TYPE NAME)",
		Short: "List a Deployment's revisions",
		RunE: func(_ *cobra.Command, args []string) error {
			k, name, err := workloadTarget(args, "Deployment", "StatefulSet")
			if err != nil {
				return err
			}
			if k.Kind == "StatefulSet" {
				return statefulSetHistory(g, name, revision)
			}
			return rolloutHistory(g, name, revision)
		},
	}
	history.Flags().Int64Var(&revision, "revision", 0, "show the template of this revision")
	var toRevision int64
	undo := &cobra.Command{
		Use:   "undo (TYPE/NAME | TYPE NAME) [--to-revision=N]",
		Short: "Roll back to the previous (or a given) revision",
		RunE: func(_ *cobra.Command, args []string) error {
			k, name, err := workloadTarget(args, "Deployment", "StatefulSet")
			if err != nil {
				return err
			}
			if k.Kind == "StatefulSet" {
				return statefulSetUndo(g, name, toRevision)
			}
			return rolloutUndo(g, name, toRevision)
		},
	}
	undo.Flags().Int64Var(&toRevision, "to-revision", 0, "the revision to go back to (0: the previous one)")
	toggle := func(use, short, done string, f func(d *v1.Deployment) error) *cobra.Command {
		return &cobra.Command{
			Use:   use + " (TYPE/NAME | TYPE NAME)",
			Short: short,
			RunE: func(_ *cobra.Command, args []string) error {
				k, name, err := workloadTarget(args, "Deployment")
				if err != nil {
					return err
				}
				if _, err := g.mutate(k, name, func(o api.Object) error { return f(o.(*v1.Deployment)) }); err != nil {
					return err
				}
				fmt.Fprintf(g.out, "%s %s\n", qualified(k, name), done)
				return nil
			},
		}
	}
	r.AddCommand(status, history, undo,
		toggle("pause", "Stop rolling out template changes (scaling still works)", "paused", func(d *v1.Deployment) error {
			if d.Spec.Paused {
				return fmt.Errorf("deployments.apps %q is already paused", d.Metadata.Name)
			}
			d.Spec.Paused = true
			return nil
		}),
		toggle("resume", "Resume a paused Deployment", "resumed", func(d *v1.Deployment) error {
			if !d.Spec.Paused {
				return fmt.Errorf("deployments.apps %q is not paused", d.Metadata.Name)
			}
			d.Spec.Paused = false
			return nil
		}),
		toggle("restart", "Restart every pod through a rollout", "restarted", func(d *v1.Deployment) error {
			if d.Spec.Paused {
				return fmt.Errorf("can't restart paused deployment (run rollout resume first)")
			}
			t := d.Spec.Template
			if t.Metadata == nil {
				t.Metadata = &v1.ObjectMeta{}
			}
			if t.Metadata.Annotations == nil {
				t.Metadata.Annotations = map[string]string{}
			}
			t.Metadata.Annotations["kubectl.kubernetes.io/restartedAt"] = time.Now().Format(time.RFC3339)
			setAnn(d, "kubernetes.io/change-cause", changeCause())
			return nil
		}),
	)
	return r
}

// DeploymentStatus is kubectl's rollout status message for a Deployment:
// the message, whether it is done, or an error (deadline exceeded).
func DeploymentStatus(d *v1.Deployment) (string, bool, error) {
	name := d.Metadata.Name
	st := d.GetStatus()
	if d.Metadata.Generation > st.GetObservedGeneration() {
		return "Waiting for deployment spec update to be observed...\n", false, nil
	}
	for _, c := range st.GetConditions() {
		if c.Type == "Progressing" && c.Reason == "ProgressDeadlineExceeded" {
			return "", false, fmt.Errorf("deployment %q exceeded its progress deadline", name)
		}
	}
	want := d.Spec.GetReplicas()
	switch {
	case st.GetUpdatedReplicas() < want:
		return fmt.Sprintf("Waiting for deployment %q rollout to finish: %d out of %d new replicas have been updated...\n", name, st.GetUpdatedReplicas(), want), false, nil
	case st.GetReplicas() > st.GetUpdatedReplicas():
		return fmt.Sprintf("Waiting for deployment %q rollout to finish: %d old replicas are pending termination...\n", name, st.GetReplicas()-st.GetUpdatedReplicas()), false, nil
	case st.GetAvailableReplicas() < st.GetUpdatedReplicas():
		return fmt.Sprintf("Waiting for deployment %q rollout to finish: %d of %d updated replicas are available...\n", name, st.GetAvailableReplicas(), st.GetUpdatedReplicas()), false, nil
	}
	return fmt.Sprintf("deployment %q successfully rolled out\n", name), true, nil
}

var statusViewers = map[string]func(api.Object) (string, bool, error){
	"Deployment":  func(o api.Object) (string, bool, error) { return DeploymentStatus(o.(*v1.Deployment)) },
	"StatefulSet": func(o api.Object) (string, bool, error) { return StatefulSetStatus(o.(*v1.StatefulSet)) },
}

// StatefulSetStatus is kubectl's rollout status message for a StatefulSet.
func StatefulSetStatus(s *v1.StatefulSet) (string, bool, error) {
	if s.Spec.GetUpdateStrategy().GetType() != "RollingUpdate" {
		return "", true, fmt.Errorf("rollout status is only available for RollingUpdate strategy type")
	}
	st := s.GetStatus()
	if st.GetObservedGeneration() == 0 || s.Metadata.Generation > st.GetObservedGeneration() {
		return "Waiting for statefulset spec update to be observed...\n", false, nil
	}
	want := s.Spec.GetReplicas()
	if st.GetReadyReplicas() < want {
		return fmt.Sprintf("Waiting for %d pods to be ready...\n", want-st.GetReadyReplicas()), false, nil
	}
	if p := s.Spec.GetUpdateStrategy().GetRollingUpdate().GetPartition(); p > 0 {
		if st.GetUpdatedReplicas() < want-p {
			return fmt.Sprintf("Waiting for partitioned roll out to finish: %d out of %d new pods have been updated...\n", st.GetUpdatedReplicas(), want-p), false, nil
		}
		return fmt.Sprintf("partitioned roll out complete: %d new pods have been updated...\n", st.GetUpdatedReplicas()), true, nil
	}
	if st.GetUpdateRevision() != st.GetCurrentRevision() {
		return fmt.Sprintf("waiting for statefulset rolling update to complete %d pods at revision %s...\n", st.GetUpdatedReplicas(), st.GetUpdateRevision()), false, nil
	}
	return fmt.Sprintf("statefulset rolling update complete %d pods at revision %s...\n", st.GetCurrentReplicas(), st.GetCurrentRevision()), true, nil
}

// waitingOn says, for each pod of a StatefulSet not yet at the update
// revision and ready, what the rollout waits on: why StatefulSet updates are
// slow, made visible.
func waitingOn(g *globals, c *client.Client, s *v1.StatefulSet) string {
	ctx, cancel := g.ctx()
	defer cancel()
	pods, _, err := c.Pods().List(ctx, &v1.ListRequest{Namespace: s.Metadata.Namespace})
	if err != nil {
		return ""
	}
	byName := map[string]*v1.Pod{}
	for _, p := range pods {
		byName[p.Metadata.Name] = p
	}
	upd := s.GetStatus().GetUpdateRevision()
	var lines []string
	for i := int(s.Spec.GetReplicas()) - 1; i >= 0; i-- {
		name := fmt.Sprintf("%s-%d", s.Metadata.Name, i)
		p := byName[name]
		var what string
		switch {
		case p == nil:
			what = "waiting for the pod to be created"
		case p.Metadata.DeletionTimestamp != nil:
			left := time.Until(p.Metadata.DeletionTimestamp.AsTime()).Round(time.Second)
			what = fmt.Sprintf("old pod terminating (%s of grace left)", max(left, 0))
		case p.Metadata.Labels["controller-revision-hash"] != upd && upd != "":
			continue // not replaced yet
		case p.GetSpec().GetNodeName() == "":
			what = "new pod pending (not scheduled)"
		case p.GetStatus().GetPhase() == "Pending":
			what = "new pod starting"
		default:
			ready := false
			for _, c := range p.GetStatus().GetConditions() {
				ready = ready || (c.Type == "Ready" && c.Status == "True")
			}
			if ready {
				continue
			}
			what = "new pod running, not yet ready"
		}
		lines = append(lines, fmt.Sprintf("  %s: %s\n", name, what))
	}
	return strings.Join(lines, "")
}

// rolloutStatus watches the object and prints each new status message
// until the rollout is done.
func rolloutStatus(g *globals, k *api.Kind, name string, timeout time.Duration) error {
	view, ok := statusViewers[k.Kind]
	if !ok {
		return usagef("rollout status of %s is not supported yet", k.Resource)
	}
	c, err := g.client()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	res := client.Dynamic(c, k)
	last := ""
	for {
		w, err := res.Watch(ctx, &v1.WatchRequest{Namespace: g.ns(), FieldSelector: "metadata.name=" + name})
		if err != nil {
			return err
		}
		seen := false
		for {
			typ, o, err := w.Recv()
			if err != nil {
				w.Stop()
				if errors.Is(ctx.Err(), context.DeadlineExceeded) {
					return fmt.Errorf("timed out waiting for the condition")
				}
				if ctx.Err() != nil {
					return nil
				}
				break // re-watch
			}
			seen = true
			if typ == "DELETED" {
				w.Stop()
				return fmt.Errorf("object has been deleted")
			}
			msg, done, err := view(o)
			if err != nil {
				w.Stop()
				return err
			}
			if s, ok := o.(*v1.StatefulSet); ok && !done {
				msg += waitingOn(g, c, s)
			}
			if msg != last {
				fmt.Fprint(g.out, msg)
				last = msg
			}
			if done {
				w.Stop()
				return nil
			}
		}
		if !seen {
			ctx2, cancel := g.ctx()
			_, err := res.Get(ctx2, g.ns(), name)
			cancel()
			if err != nil {
				return err
			}
		}
	}
}

// ownedReplicaSets lists the Deployment's ReplicaSets by revision.
func ownedReplicaSets(g *globals, name string) (*v1.Deployment, []*v1.ReplicaSet, error) {
	c, err := g.client()
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := g.ctx()
	defer cancel()
	d, err := c.Deployments().Get(ctx, g.ns(), name)
	if err != nil {
		return nil, nil, err
	}
	all, _, err := c.ReplicaSets().List(ctx, &v1.ListRequest{Namespace: g.ns()})
	if err != nil {
		return nil, nil, err
	}
	var out []*v1.ReplicaSet
	for _, rs := range all {
		for _, r := range rs.Metadata.OwnerReferences {
			if r.GetController() && r.Uid == d.Metadata.Uid {
				out = append(out, rs)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return revisionOf(out[i]) < revisionOf(out[j]) })
	return d, out, nil
}

func revisionOf(rs *v1.ReplicaSet) int64 {
	n, _ := strconv.ParseInt(rs.Metadata.GetAnnotations()[revisionAnnotation], 10, 64)
	return n
}

func rolloutHistory(g *globals, name string, revision int64) error {
	_, rss, err := ownedReplicaSets(g, name)
	if err != nil {
		return err
	}
	if revision > 0 {
		for _, rs := range rss {
			if revisionOf(rs) == revision {
				t := proto.Clone(rs.Spec.Template).(*v1.PodTemplateSpec)
				delete(t.Metadata.Labels, templateHashLabel)
				m, err := api.ToMap(&v1.ReplicaSet{ApiVersion: "apps/v1", Kind: "ReplicaSet", Spec: &v1.ReplicaSetSpec{Template: t}})
				if err != nil {
					return err
				}
				b, _ := yaml.Marshal(m["spec"].(map[string]any)["template"])
				fmt.Fprintf(g.out, "deployment.apps/%s with revision #%d\nPod Template:\n%s", name, revision, indentText(string(b), "  "))
				return nil
			}
		}
		return fmt.Errorf("unable to find the specified revision %d", revision)
	}
	fmt.Fprintf(g.out, "deployment.apps/%s\n", name)
	w := tabwriter.NewWriter(g.out, 0, 8, 2, ' ', 0)
	fmt.Fprintln(w, "REVISION\tCHANGE-CAUSE")
	for _, rs := range rss {
		cause := rs.Metadata.GetAnnotations()["kubernetes.io/change-cause"]
		if cause == "" {
			cause = "<none>"
		}
		fmt.Fprintf(w, "%d\t%s\n", revisionOf(rs), cause)
	}
	return w.Flush()
}

// rolloutUndo copies an earlier revision's template back into the
// Deployment, as kubectl does; the controller then rolls it out as a new
// revision.
func rolloutUndo(g *globals, name string, to int64) error {
	d, rss, err := ownedReplicaSets(g, name)
	if err != nil {
		return err
	}
	if d.Spec.Paused {
		return fmt.Errorf("you cannot rollback a paused deployment; resume it first with 'kubectl-lite rollout resume deployment/%s' and try again", name)
	}
	var target *v1.ReplicaSet
	if to == 0 {
		// The previous revision: the highest below the current one.
		cur, _ := strconv.ParseInt(d.Metadata.GetAnnotations()[revisionAnnotation], 10, 64)
		for _, rs := range rss {
			if r := revisionOf(rs); r < cur && (target == nil || r > revisionOf(target)) {
				target = rs
			}
		}
		if target == nil {
			return fmt.Errorf("no rollout history found for deployment %q", name)
		}
	} else {
		for _, rs := range rss {
			if revisionOf(rs) == to {
				target = rs
			}
		}
		if target == nil {
			return fmt.Errorf("unable to find specified revision %d in history", to)
		}
	}
	tmpl := proto.Clone(target.Spec.Template).(*v1.PodTemplateSpec)
	delete(tmpl.Metadata.Labels, templateHashLabel)
	if proto.Equal(tmpl, d.Spec.Template) {
		fmt.Fprintf(g.out, "deployment.apps/%s skipped rollback (current template already matches revision %d)\n", name, revisionOf(target))
		return nil
	}
	k, _ := api.Lookup("deployments")
	if _, err := g.mutate(k, name, func(o api.Object) error {
		o.(*v1.Deployment).Spec.Template = proto.Clone(tmpl).(*v1.PodTemplateSpec)
		// The Deployment takes the revision's change-cause, or none.
		if cause, ok := target.Metadata.GetAnnotations()["kubernetes.io/change-cause"]; ok {
			setAnn(o, "kubernetes.io/change-cause", cause)
		} else {
			delete(o.GetMetadata().Annotations, "kubernetes.io/change-cause")
		}
		return nil
	}); err != nil {
		return err
	}
	fmt.Fprintf(g.out, "deployment.apps/%s rolled back\n", name)
	return nil
}

// setRevisions lists a StatefulSet's ControllerRevisions, oldest first.
func setRevisions(g *globals, name string) (*v1.StatefulSet, []*v1.ControllerRevision, error) {
	c, err := g.client()
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := g.ctx()
	defer cancel()
	s, err := c.StatefulSets().Get(ctx, g.ns(), name)
	if err != nil {
		return nil, nil, err
	}
	all, _, err := c.ControllerRevisions().List(ctx, &v1.ListRequest{Namespace: g.ns()})
	if err != nil {
		return nil, nil, err
	}
	var out []*v1.ControllerRevision
	for _, r := range all {
		for _, ref := range r.Metadata.OwnerReferences {
			if ref.GetController() && ref.Uid == s.Metadata.Uid {
				out = append(out, r)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Revision < out[j].Revision })
	return s, out, nil
}

func revisionTemplate(r *v1.ControllerRevision) (*v1.PodTemplateSpec, error) {
	t := &v1.PodTemplateSpec{}
	return t, protojson.Unmarshal(r.Data, t)
}

func statefulSetHistory(g *globals, name string, revision int64) error {
	_, revs, err := setRevisions(g, name)
	if err != nil {
		return err
	}
	if revision > 0 {
		for _, r := range revs {
			if r.Revision == revision {
				t, err := revisionTemplate(r)
				if err != nil {
					return err
				}
				m, err := api.ToMap(&v1.StatefulSet{ApiVersion: "apps/v1", Kind: "StatefulSet", Spec: &v1.StatefulSetSpec{Template: t}})
				if err != nil {
					return err
				}
				b, _ := yaml.Marshal(m["spec"].(map[string]any)["template"])
				fmt.Fprintf(g.out, "statefulset.apps/%s with revision #%d\nPod Template:\n%s", name, revision, indentText(string(b), "  "))
				return nil
			}
		}
		return fmt.Errorf("unable to find the specified revision %d", revision)
	}
	fmt.Fprintf(g.out, "statefulset.apps/%s\n", name)
	w := tabwriter.NewWriter(g.out, 0, 8, 2, ' ', 0)
	fmt.Fprintln(w, "REVISION\tCONTROLLER-REVISION")
	for _, r := range revs {
		fmt.Fprintf(w, "%d\t%s\n", r.Revision, r.Metadata.Name)
	}
	return w.Flush()
}

func statefulSetUndo(g *globals, name string, to int64) error {
	s, revs, err := setRevisions(g, name)
	if err != nil {
		return err
	}
	var target *v1.ControllerRevision
	switch {
	case to == 0 && len(revs) >= 2:
		target = revs[len(revs)-2]
	case to == 0:
		return fmt.Errorf("no rollout history found for statefulset %q", name)
	default:
		for _, r := range revs {
			if r.Revision == to {
				target = r
			}
		}
		if target == nil {
			return fmt.Errorf("unable to find specified revision %d in history", to)
		}
	}
	t, err := revisionTemplate(target)
	if err != nil {
		return err
	}
	if proto.Equal(t, s.Spec.Template) {
		fmt.Fprintf(g.out, "statefulset.apps/%s skipped rollback (current template already matches revision %d)\n", name, target.Revision)
		return nil
	}
	k, _ := api.Lookup("statefulsets")
	if _, err := g.mutate(k, name, func(o api.Object) error {
		o.(*v1.StatefulSet).Spec.Template = t
		return nil
	}); err != nil {
		return err
	}
	fmt.Fprintf(g.out, "statefulset.apps/%s rolled back\n", name)
	return nil
}
