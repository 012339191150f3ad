package cmd

import (
	"encoding/json"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	"github.com/kubelite/kubelite/internal/api"
	"github.com/kubelite/kubelite/internal/client"
)

// lastAppliedAnnotation holds the manifest last applied, as kubectl keeps it,
// so a field removed from the manifest is removed from the object.
const lastAppliedAnnotation = "kubectl.kubernetes.io/last-applied-configuration"

type applyOptions struct {
	files []string
}

func newApplyCommand(g *globals) *cobra.Command {
	o := &applyOptions{}
	c := &cobra.Command{
		Use:   "apply -f FILENAME",
		Short: "Create or update objects from files, folders or stdin",
		Args:  cobra.NoArgs,
		RunE:  func(_ *cobra.Command, _ []string) error { return runApply(g, o) },
	}
	c.Flags().StringSliceVarP(&o.files, "filename", "f", nil, "file, folder or - (stdin) holding YAML or JSON manifests")
	return c
}

func runApply(g *globals, o *applyOptions) error {
	return g.eachManifest(o.files, func(c *client.Client, obj api.Object) (string, error) { return applyOne(g, c, obj) })
}

// silentError fails the command after its errors were already printed.
type silentError struct{}

func (silentError) Error() string { return "" }

// applyOne creates or updates one object. A conflict (someone else wrote the
// object between our read and our write, e.g. the scheduler binding a new
// pod) is retried on the fresh object, as kubectl's patch would.
func applyOne(g *globals, c *client.Client, obj api.Object) (string, error) {
	var msg string
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		msg, err = applyOnce(g, c, obj)
		if !client.IsConflict(err) {
			return msg, err
		}
	}
	return msg, err
}

func applyOnce(g *globals, c *client.Client, obj api.Object) (string, error) {
	k := api.KindOf(obj)
	res := client.Dynamic(c, k)
	ctx, cancel := g.ctx()
	defer cancel()
	manifest, err := api.ToMap(obj)
	if err != nil {
		return "", err
	}
	mb, _ := json.Marshal(manifest)
	m := obj.GetMetadata()
	live, err := res.Get(ctx, m.Namespace, m.Name)
	if client.IsNotFound(err) {
		withAnn := proto.Clone(obj).(api.Object)
		setAnnotation(withAnn, lastAppliedAnnotation, string(mb))
		if _, err := res.Create(ctx, withAnn); err != nil {
			return "", err
		}
		return ref(obj) + " created", nil
	}
	if err != nil {
		return "", err
	}
	merged, err := threeWayMerge(live, manifest)
	if err != nil {
		return "", err
	}
	setAnnotation(merged, lastAppliedAnnotation, string(mb))
	updated, err := res.Update(ctx, merged)
	if err != nil {
		return "", err
	}
	if updated.GetMetadata().GetResourceVersion() == live.GetMetadata().GetResourceVersion() {
		return ref(obj) + " unchanged", nil
	}
	return ref(obj) + " configured", nil
}

func setAnnotation(o api.Object, key, value string) {
	m := api.EnsureMeta(o)
	if m.Annotations == nil {
		m.Annotations = map[string]string{}
	}
	m.Annotations[key] = value
}

// threeWayMerge computes what apply writes: the live object, minus the
// fields the last applied manifest had and the new one dropped, plus the new
// manifest. Maps merge key by key; lists and scalars are replaced.
func threeWayMerge(live api.Object, manifest map[string]any) (api.Object, error) {
	liveMap, err := api.ToMap(live)
	if err != nil {
		return nil, err
	}
	var last map[string]any
	if s := live.GetMetadata().GetAnnotations()[lastAppliedAnnotation]; s != "" {
		_ = json.Unmarshal([]byte(s), &last)
	}
	delete(liveMap, "status")
	removeDropped(liveMap, last, manifest)
	overlay(liveMap, manifest)
	b, err := json.Marshal(liveMap)
	if err != nil {
		return nil, err
	}
	out, err := api.DecodeJSON(b)
	if err != nil {
		return nil, err
	}
	out.GetMetadata().ResourceVersion = live.GetMetadata().GetResourceVersion()
	return out, nil
}

func removeDropped(live, last, next map[string]any) {
	for k, lv := range last {
		nv, inNext := next[k]
		if !inNext {
			delete(live, k)
			continue
		}
		lm, ok1 := lv.(map[string]any)
		nm, ok2 := nv.(map[string]any)
		cm, ok3 := live[k].(map[string]any)
		if ok1 && ok2 && ok3 {
			removeDropped(cm, lm, nm)
		}
	}
}

func overlay(dst, src map[string]any) {
	for k, sv := range src {
		sm, ok1 := sv.(map[string]any)
		dm, ok2 := dst[k].(map[string]any)
		if ok1 && ok2 {
			overlay(dm, sm)
			continue
		}
		dst[k] = sv
	}
}
