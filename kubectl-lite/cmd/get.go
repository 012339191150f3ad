package cmd

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/kubelite/kubelite/internal/api"
	"github.com/kubelite/kubelite/internal/client"
	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

type getOptions struct {
	output        string
	selector      string
	fieldSelector string
	allNamespaces bool
	watch         bool
	noHeaders     bool
}

func newGetCommand(g *globals) *cobra.Command {
	o := &getOptions{}
	c := &cobra.Command{
		Use:   "get TYPE[.NAME] [NAME...] | TYPE/NAME ...",
		Short: "Display one or many objects",
		Example: `  kubectl-lite get pods
  kubectl-lite get pod web -o yaml
  kubectl-lite get pods -A -l app=web -o wide
  kubectl-lite get pods -w`,
		RunE: func(_ *cobra.Command, args []string) error { return runGet(g, o, args) },
	}
	f := c.Flags()
	f.StringVarP(&o.output, "output", "o", "", "output format: json, yaml, name or wide")
	f.StringVarP(&o.selector, "selector", "l", "", "label selector, e.g. app=web,tier!=db")
	f.StringVar(&o.fieldSelector, "field-selector", "", "field selector, e.g. spec.nodeName=node-1,status.phase=Running")
	f.BoolVarP(&o.allNamespaces, "all-namespaces", "A", false, "list across all namespaces")
	f.BoolVarP(&o.watch, "watch", "w", false, "after listing, watch for changes")
	f.BoolVar(&o.noHeaders, "no-headers", false, "omit the table header")
	return c
}

// request is one kind and the names asked for (none: all).
type request struct {
	kind  *api.Kind
	names []string
}

func parseTargets(args []string) ([]request, error) {
	if len(args) == 0 {
		return nil, usagef("you must specify the type of resource to get. Known resource types: %s", strings.Join(api.ResourceNames(), ", "))
	}
	var reqs []request
	if strings.Contains(args[0], "/") {
		for _, a := range args {
			k, name, err := resolveKind(a)
			if err != nil {
				return nil, err
			}
			if name == "" {
				return nil, usagef("arguments in resource/name form must have a single resource and name")
			}
			reqs = append(reqs, request{kind: k, names: []string{name}})
		}
		return reqs, nil
	}
	for _, t := range strings.Split(args[0], ",") {
		k, _, err := resolveKind(t)
		if err != nil {
			return nil, err
		}
		reqs = append(reqs, request{kind: k, names: args[1:]})
	}
	return reqs, nil
}

func runGet(g *globals, o *getOptions, args []string) error {
	reqs, err := parseTargets(args)
	if err != nil {
		return err
	}
	p, err := newPrinter(o.output, g.out, o.allNamespaces)
	if err != nil {
		return err
	}
	p.noHead = o.noHeaders
	c, err := g.client()
	if err != nil {
		return err
	}
	ns := g.ns()
	if o.allNamespaces {
		ns = ""
	}
	if o.watch {
		if len(reqs) != 1 || len(reqs[0].names) > 1 {
			return usagef("you may only watch a single resource type, or one object by name")
		}
		return watchGet(g, c, p, reqs[0], ns, o)
	}
	failed := false
	for i, r := range reqs {
		if len(reqs) > 1 && (o.output == "" || o.output == "wide") {
			// One table per kind, as kubectl prints them.
			if i > 0 && p.started {
				fmt.Fprintln(g.out)
			}
			p, _ = newPrinter(o.output, g.out, o.allNamespaces)
			p.noHead, p.withKind = o.noHeaders, true
		}
		res := client.Dynamic(c, r.kind)
		ctx, cancel := g.ctx()
		var objs []api.Object
		if len(r.names) == 0 {
			objs, _, err = res.List(ctx, &v1.ListRequest{Namespace: ns, LabelSelector: o.selector, FieldSelector: o.fieldSelector})
			cancel()
			if err != nil {
				return err
			}
			sortObjects(r.kind, objs)
			if len(objs) == 0 && o.output == "" {
				if ns == "" || !r.kind.Namespaced {
					g.errOutf("No resources found\n")
				} else {
					g.errOutf("No resources found in %s namespace.\n", ns)
				}
				continue
			}
		} else {
			for _, name := range r.names {
				obj, err := res.Get(ctx, g.ns(), name)
				if err != nil {
					g.errOutf("%s\n", g.describeError(err))
					failed = true
					continue
				}
				objs = append(objs, obj)
			}
			cancel()
		}
		if err := p.print(r.kind, objs, len(reqs) == 1 && len(r.names) == 1); err != nil {
			return err
		}
	}
	if failed {
		return silentError{}
	}
	return nil
}

func (g *globals) errOutf(format string, args ...any) {
	_, _ = g.errOut.Write([]byte(sprintf(format, args...)))
}

// sortObjects orders a listing: events by time, everything else by name.
func sortObjects(k *api.Kind, objs []api.Object) {
	if k.Kind != "Event" {
		sortByName(objs)
		return
	}
	sort.SliceStable(objs, func(i, j int) bool {
		a, b := objs[i].(*v1.Event), objs[j].(*v1.Event)
		return eventTime(a).Before(eventTime(b))
	})
}

// watchGet prints the current objects, then every change until interrupted.
func watchGet(g *globals, c *client.Client, p *printer, r request, ns string, o *getOptions) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fs := o.fieldSelector
	if len(r.names) == 1 {
		if fs != "" {
			fs += ","
		}
		fs += "metadata.name=" + r.names[0]
		if ns == "" {
			ns = g.ns()
		}
	}
	res := client.Dynamic(c, r.kind)
	rv := "" // first the current objects, then changes; after a break, from here
	for {
		w, err := res.Watch(ctx, &v1.WatchRequest{Namespace: ns, LabelSelector: o.selector, FieldSelector: fs, ResourceVersion: rv})
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		for {
			_, obj, err := w.Recv()
			if err != nil {
				w.Stop()
				if ctx.Err() != nil {
					return nil
				}
				if client.IsTooOld(err) {
					rv = "" // relist
				}
				break // the server ended the watch: resume it
			}
			if obj == nil {
				continue
			}
			rv = obj.GetMetadata().GetResourceVersion()
			if err := p.print(r.kind, []api.Object{obj}, true); err != nil {
				return err
			}
		}
	}
}
