package cmd

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kubelite/kubelite/internal/api"
	"github.com/kubelite/kubelite/internal/client"
	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

type deleteOptions struct {
	files       []string
	selector    string
	all         bool
	gracePeriod int64
	force       bool
	now         bool
	wait        bool
	timeout     time.Duration
	cascade     string
}

func newDeleteCommand(g *globals) *cobra.Command {
	o := &deleteOptions{}
	c := &cobra.Command{
		Use:   "delete (-f FILENAME | TYPE [NAME...] | TYPE/NAME | TYPE -l label | TYPE --all)",
		Short: "Delete objects; pods are deleted gracefully",
		Example: `  kubectl-lite delete pod web
  kubectl-lite delete pod web --grace-period=5
  kubectl-lite delete pod web --grace-period=0 --force
  kubectl-lite delete -f deploy/examples/pod.yaml`,
		RunE: func(_ *cobra.Command, args []string) error { return runDelete(g, o, args) },
	}
	f := c.Flags()
	f.StringSliceVarP(&o.files, "filename", "f", nil, "delete the objects in these files")
	f.StringVarP(&o.selector, "selector", "l", "", "delete the objects matching this label selector")
	f.BoolVar(&o.all, "all", false, "delete every object of the type in the namespace")
	f.Int64Var(&o.gracePeriod, "grace-period", -1, "seconds given to the object to terminate gracefully; -1 uses its own. 0 needs --force")
	f.BoolVar(&o.force, "force", false, "remove the object at once, without waiting for the kubelet's confirmation")
	f.BoolVar(&o.now, "now", false, "signal the processes to stop at once (grace period 1)")
	f.BoolVar(&o.wait, "wait", true, "wait until the objects are gone before returning")
	f.DurationVar(&o.timeout, "timeout", 0, "how long to wait for deletion (0: the grace period plus a minute)")
	f.StringVar(&o.cascade, "cascade", "background", "what happens to dependents: background, foreground or orphan")
	return c
}

// effectiveGrace applies kubectl's rules: --now is 1; 0 without --force is
// turned into 1; --force alone means 0.
func (o *deleteOptions) effectiveGrace() (int64, error) {
	g := o.gracePeriod
	if o.now {
		if g != -1 {
			return 0, usagef("--now and --grace-period cannot be specified together")
		}
		g = 1
	}
	if g == 0 && !o.force {
		g = 1
	}
	if o.force && g < 0 {
		g = 0
	}
	return g, nil
}

func runDelete(g *globals, o *deleteOptions, args []string) error {
	grace, err := o.effectiveGrace()
	if err != nil {
		return err
	}
	var policy string
	switch o.cascade {
	case "background", "true":
		policy = "Background"
	case "foreground":
		policy = "Foreground"
	case "orphan", "false":
		policy = "Orphan"
	default:
		return usagef("--cascade %q: expected background, foreground or orphan", o.cascade)
	}
	type target struct {
		kind      *api.Kind
		namespace string
		name      string
	}
	var targets []target
	c, err := g.client()
	if err != nil {
		return err
	}
	switch {
	case len(o.files) > 0:
		if len(args) > 0 {
			return usagef("when -f is given, no resource or name may be given")
		}
		objs, err := g.readManifests(o.files)
		if err != nil {
			return err
		}
		for _, obj := range objs {
			if err := g.setNamespace(obj); err != nil {
				return err
			}
			targets = append(targets, target{api.KindOf(obj), obj.GetMetadata().GetNamespace(), obj.GetMetadata().GetName()})
		}
	case len(args) == 0:
		return usagef("you must provide one or more resources by argument or filename.\nExample resource specifications include:\n   '-f rsrc.yaml'\n   'pod/web'\n   'pod web'")
	default:
		reqs, err := parseTargets(args)
		if err != nil {
			return err
		}
		for _, r := range reqs {
			if len(r.names) > 0 {
				if o.all || o.selector != "" {
					return usagef("names cannot be given together with --all or -l")
				}
				for _, n := range r.names {
					targets = append(targets, target{r.kind, g.ns(), n})
				}
				continue
			}
			if !o.all && o.selector == "" {
				return usagef("resource(s) were provided, but no name was specified; use --all or -l to delete many")
			}
			ctx, cancel := g.ctx()
			objs, _, err := client.Dynamic(c, r.kind).List(ctx, &v1.ListRequest{Namespace: g.ns(), LabelSelector: o.selector})
			cancel()
			if err != nil {
				return err
			}
			sortByName(objs)
			for _, obj := range objs {
				targets = append(targets, target{r.kind, obj.GetMetadata().GetNamespace(), obj.GetMetadata().GetName()})
			}
			if len(objs) == 0 {
				g.errOutf("No resources found\n")
			}
		}
	}
	if o.force && grace == 0 {
		fmt.Fprintln(g.errOut, "Warning: Immediate deletion does not wait for confirmation that the running resource has been terminated. The resource may continue to run on the cluster indefinitely.")
	}
	opts := &v1.DeleteOptions{PropagationPolicy: policy}
	if grace >= 0 {
		opts.GracePeriodSeconds = &grace
	}
	failed := false
	type pending struct {
		t   target
		uid string
		max time.Duration
	}
	var waits []pending
	for _, t := range targets {
		ctx, cancel := g.ctx()
		last, err := client.Dynamic(c, t.kind).Delete(ctx, t.namespace, t.name, opts)
		cancel()
		if err != nil {
			g.errOutf("%s\n", g.describeError(err))
			failed = true
			continue
		}
		verb := "deleted"
		if o.force && grace == 0 {
			verb = "force deleted"
		}
		fmt.Fprintf(g.out, "%s \"%s\" %s\n", strings.ToLower(t.kind.Kind), t.name, verb)
		wait := time.Duration(last.GetMetadata().GetDeletionGracePeriodSeconds())*time.Second + time.Minute
		waits = append(waits, pending{t, last.GetMetadata().GetUid(), wait})
	}
	if o.wait {
		for _, w := range waits {
			max := w.max
			if o.timeout > 0 {
				max = o.timeout
			}
			if err := waitGone(g, client.Dynamic(c, w.t.kind), w.t.namespace, w.t.name, w.uid, max); err != nil {
				return err
			}
		}
	}
	if failed {
		return silentError{}
	}
	return nil
}

// waitGone polls until the object with uid is gone.
func waitGone(g *globals, res *client.Resource[api.Object], ns, name, uid string, max time.Duration) error {
	deadline := time.Now().Add(max)
	for {
		ctx, cancel := g.ctx()
		o, err := res.Get(ctx, ns, name)
		cancel()
		if client.IsNotFound(err) || (err == nil && o.GetMetadata().GetUid() != uid) {
			return nil
		}
		if err != nil && !client.IsUnavailable(err) {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out waiting for %s %q to be deleted (waited %s)", strings.ToLower(res.Kind().Kind), name, max)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func newAPIResourcesCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "api-resources",
		Short: "List the resource types the server serves",
		Args:  cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			p, _ := newPrinter("", g.out, false)
			fmt.Fprintln(p.w, "NAME\tSHORTNAMES\tAPIVERSION\tNAMESPACED\tKIND")
			for _, k := range api.Kinds {
				fmt.Fprintf(p.w, "%s\t%s\t%s\t%v\t%s\n", k.Resource, strings.Join(k.ShortNames, ","), k.APIVersion, k.Namespaced, k.Kind)
			}
			return p.w.Flush()
		},
	}
}
