package cmd

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	"github.com/kubelite/kubelite/internal/api"
	"github.com/kubelite/kubelite/internal/client"
	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

// target reads "deployment/web" or "deployment web" for the workload verbs.
func workloadTarget(args []string, allowed ...string) (*api.Kind, string, error) {
	var k *api.Kind
	var name string
	var err error
	switch len(args) {
	case 1:
		k, name, err = resolveKind(args[0])
	case 2:
		k, _, err = resolveKind(args[0])
		name = args[1]
	default:
		return nil, "", usagef("expected TYPE/NAME or TYPE NAME, e.g. deployment/web")
	}
	if err != nil {
		return nil, "", err
	}
	if name == "" {
		return nil, "", usagef("a name is required, e.g. %s/web", k.Singular)
	}
	for _, a := range allowed {
		if k.Kind == a {
			return k, name, nil
		}
	}
	return nil, "", usagef("%s is not supported here; supported: %s", k.Resource, strings.Join(allowed, ", "))
}

func qualified(k *api.Kind, name string) string {
	group := ""
	if i := strings.Index(k.APIVersion, "/"); i >= 0 {
		group = "." + k.APIVersion[:i]
	}
	return k.Singular + group + "/" + name
}

// mutate reads an object, applies f and writes it, retrying on conflict.
func (g *globals) mutate(k *api.Kind, name string, f func(o api.Object) error) (api.Object, error) {
	c, err := g.client()
	if err != nil {
		return nil, err
	}
	res := client.Dynamic(c, k)
	for attempt := 0; ; attempt++ {
		ctx, cancel := g.ctx()
		cur, err := res.Get(ctx, g.ns(), name)
		if err != nil {
			cancel()
			return nil, err
		}
		o := proto.Clone(cur).(api.Object)
		if err := f(o); err != nil {
			cancel()
			return nil, err
		}
		out, err := res.Update(ctx, o)
		cancel()
		if client.IsConflict(err) && attempt < 5 {
			continue
		}
		return out, err
	}
}

func newScaleCommand(g *globals) *cobra.Command {
	var replicas int32
	c := &cobra.Command{
		Use:     "scale (TYPE/NAME | TYPE NAME) --replicas=COUNT",
		Short:   "Set the size of a Deployment, ReplicaSet or StatefulSet",
		Example: "  kubectl-lite scale deployment/web --replicas=5",
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("replicas") {
				return usagef("--replicas=COUNT is required")
			}
			if replicas < 0 {
				return usagef("--replicas %d: must not be negative", replicas)
			}
			k, name, err := workloadTarget(args, "Deployment", "ReplicaSet", "StatefulSet")
			if err != nil {
				return err
			}
			_, err = g.mutate(k, name, func(o api.Object) error {
				switch x := o.(type) {
				case *v1.Deployment:
					x.Spec.Replicas = &replicas
				case *v1.ReplicaSet:
					x.Spec.Replicas = &replicas
				case *v1.StatefulSet:
					x.Spec.Replicas = &replicas
				}
				return nil
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(g.out, "%s scaled\n", qualified(k, name))
			return nil
		},
	}
	c.Flags().Int32Var(&replicas, "replicas", 0, "the new size")
	return c
}

func changeCause() string {
	return "kubectl-lite " + strings.Join(os.Args[1:], " ")
}

func podTemplate(o api.Object) *v1.PodTemplateSpec {
	switch x := o.(type) {
	case *v1.Deployment:
		return x.Spec.Template
	case *v1.StatefulSet:
		return x.Spec.Template
	case *v1.ReplicaSet:
		return x.Spec.Template
	}
	return nil
}

func newSetCommand(g *globals) *cobra.Command {
	set := &cobra.Command{Use: "set", Short: "Change a workload's template (starts a rollout)"}
	set.AddCommand(&cobra.Command{
		Use:     "image (TYPE/NAME | TYPE NAME) CONTAINER=IMAGE ...",
		Short:   "Set containers' image (informative in kubelite, but a template change, so a rollout)",
		Example: "  kubectl-lite set image deployment/web server=web:v2",
		RunE: func(_ *cobra.Command, args []string) error {
			var target, pairs []string
			for _, a := range args {
				if strings.Contains(a, "=") {
					pairs = append(pairs, a)
				} else {
					target = append(target, a)
				}
			}
			if len(pairs) == 0 {
				return usagef("give at least one CONTAINER=IMAGE")
			}
			k, name, err := workloadTarget(target, "Deployment", "StatefulSet", "ReplicaSet")
			if err != nil {
				return err
			}
			_, err = g.mutate(k, name, func(o api.Object) error {
				t := podTemplate(o)
				for _, p := range pairs {
					cname, image, _ := strings.Cut(p, "=")
					found := false
					for _, c := range t.Spec.Containers {
						if c.Name == cname || cname == "*" {
							c.Image, found = image, true
						}
					}
					if !found {
						return fmt.Errorf("unable to find container named %q", cname)
					}
				}
				setAnn(o, "kubernetes.io/change-cause", changeCause())
				return nil
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(g.out, "%s image updated\n", qualified(k, name))
			return nil
		},
	})
	var container string
	env := &cobra.Command{
		Use:     "env (TYPE/NAME | TYPE NAME) KEY=VALUE ... [KEY-]",
		Short:   "Set or remove containers' environment variables (a template change, so a rollout)",
		Example: "  kubectl-lite set env deployment/web VERSION=2\n  kubectl-lite set env deployment/web VERSION-",
		RunE: func(_ *cobra.Command, args []string) error {
			var target, changes []string
			for _, a := range args {
				if strings.Contains(a, "=") || strings.HasSuffix(a, "-") {
					changes = append(changes, a)
				} else {
					target = append(target, a)
				}
			}
			if len(changes) == 0 {
				return usagef("give at least one KEY=VALUE or KEY-")
			}
			k, name, err := workloadTarget(target, "Deployment", "StatefulSet", "ReplicaSet")
			if err != nil {
				return err
			}
			_, err = g.mutate(k, name, func(o api.Object) error {
				for _, c := range podTemplate(o).Spec.Containers {
					if container != "" && c.Name != container {
						continue
					}
					for _, ch := range changes {
						if key, ok := strings.CutSuffix(ch, "-"); ok && !strings.Contains(ch, "=") {
							var keep []*v1.EnvVar
							for _, e := range c.Env {
								if e.Name != key {
									keep = append(keep, e)
								}
							}
							c.Env = keep
							continue
						}
						key, val, _ := strings.Cut(ch, "=")
						set := false
						for _, e := range c.Env {
							if e.Name == key {
								e.Value, set = val, true
							}
						}
						if !set {
							c.Env = append(c.Env, &v1.EnvVar{Name: key, Value: val})
						}
					}
				}
				setAnn(o, "kubernetes.io/change-cause", changeCause())
				return nil
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(g.out, "%s env updated\n", qualified(k, name))
			return nil
		},
	}
	env.Flags().StringVarP(&container, "containers", "c", "", "only this container (default: all)")
	set.AddCommand(env)
	return set
}

func setAnn(o api.Object, k, v string) {
	m := api.EnsureMeta(o)
	if m.Annotations == nil {
		m.Annotations = map[string]string{}
	}
	m.Annotations[k] = v
}
