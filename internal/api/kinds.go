// Package api holds what every kubelite binary knows about the API: the kinds
// and their resources, the storage codec, manifest (JSON/YAML) conversion,
// defaulting, validation and selectors.
package api

import (
	"fmt"
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

// Object is any stored kind: a message with ObjectMeta in field "metadata".
type Object interface {
	proto.Message
	GetMetadata() *v1.ObjectMeta
}

// Kind describes one kind of object: its names, its storage and its service.
type Kind struct {
	Kind       string   // "Pod"
	APIVersion string   // "v1", "apps/v1", "coordination.k8s.io/v1"
	Resource   string   // plural, the etcd key segment: "pods"
	Singular   string   // "pod"
	ShortNames []string // kubectl's short names: "po"
	Namespaced bool
	HasStatus  bool
	new        func() Object
	newList    func() proto.Message
	newEvent   func() proto.Message
}

// Kinds lists every kind the apiserver serves.
var Kinds = []*Kind{
	{Kind: "Pod", APIVersion: "v1", Resource: "pods", Singular: "pod", ShortNames: []string{"po"}, Namespaced: true, HasStatus: true,
		new: func() Object { return &v1.Pod{} }, newList: func() proto.Message { return &v1.PodList{} }, newEvent: func() proto.Message { return &v1.PodWatchEvent{} }},
	{Kind: "Node", APIVersion: "v1", Resource: "nodes", Singular: "node", ShortNames: []string{"no"}, HasStatus: true,
		new: func() Object { return &v1.Node{} }, newList: func() proto.Message { return &v1.NodeList{} }, newEvent: func() proto.Message { return &v1.NodeWatchEvent{} }},
	{Kind: "Lease", APIVersion: "coordination.k8s.io/v1", Resource: "leases", Singular: "lease", Namespaced: true,
		new: func() Object { return &v1.Lease{} }, newList: func() proto.Message { return &v1.LeaseList{} }, newEvent: func() proto.Message { return &v1.LeaseWatchEvent{} }},
	{Kind: "Event", APIVersion: "v1", Resource: "events", Singular: "event", ShortNames: []string{"ev"}, Namespaced: true,
		new: func() Object { return &v1.Event{} }, newList: func() proto.Message { return &v1.EventList{} }, newEvent: func() proto.Message { return &v1.EventWatchEvent{} }},
	{Kind: "ReplicaSet", APIVersion: "apps/v1", Resource: "replicasets", Singular: "replicaset", ShortNames: []string{"rs"}, Namespaced: true, HasStatus: true,
		new: func() Object { return &v1.ReplicaSet{} }, newList: func() proto.Message { return &v1.ReplicaSetList{} }, newEvent: func() proto.Message { return &v1.ReplicaSetWatchEvent{} }},
	{Kind: "Deployment", APIVersion: "apps/v1", Resource: "deployments", Singular: "deployment", ShortNames: []string{"deploy"}, Namespaced: true, HasStatus: true,
		new: func() Object { return &v1.Deployment{} }, newList: func() proto.Message { return &v1.DeploymentList{} }, newEvent: func() proto.Message { return &v1.DeploymentWatchEvent{} }},
	{Kind: "StatefulSet", APIVersion: "apps/v1", Resource: "statefulsets", Singular: "statefulset", ShortNames: []string{"sts"}, Namespaced: true, HasStatus: true,
		new: func() Object { return &v1.StatefulSet{} }, newList: func() proto.Message { return &v1.StatefulSetList{} }, newEvent: func() proto.Message { return &v1.StatefulSetWatchEvent{} }},
	{Kind: "ControllerRevision", APIVersion: "apps/v1", Resource: "controllerrevisions", Singular: "controllerrevision", Namespaced: true,
		new: func() Object { return &v1.ControllerRevision{} }, newList: func() proto.Message { return &v1.ControllerRevisionList{} }, newEvent: func() proto.Message { return &v1.ControllerRevisionWatchEvent{} }},
	{Kind: "PersistentVolumeClaim", APIVersion: "v1", Resource: "persistentvolumeclaims", Singular: "persistentvolumeclaim", ShortNames: []string{"pvc"}, Namespaced: true, HasStatus: true,
		new: func() Object { return &v1.PersistentVolumeClaim{} }, newList: func() proto.Message { return &v1.PersistentVolumeClaimList{} }, newEvent: func() proto.Message { return &v1.PersistentVolumeClaimWatchEvent{} }},
}

// ServiceName is the gRPC service that serves the kind.
func (k *Kind) ServiceName() string { return "kubelite.v1." + k.Kind + "Service" }

// Method is the full gRPC method name of one verb, e.g. "/kubelite.v1.PodService/Get".
func (k *Kind) Method(verb string) string { return "/" + k.ServiceName() + "/" + verb }

// New returns an empty object of the kind with apiVersion and kind set.
func (k *Kind) New() Object {
	o := k.new()
	SetTypeMeta(o, k)
	return o
}

// NewEmpty returns an empty object of the kind, to unmarshal into.
func (k *Kind) NewEmpty() Object { return k.new() }

// NewList returns an empty XList message.
func (k *Kind) NewList() proto.Message { return k.newList() }

// NewWatchEvent returns an empty XWatchEvent message.
func (k *Kind) NewWatchEvent() proto.Message { return k.newEvent() }

// Lookup finds a kind by its kind name, resource, singular or short name,
// case-insensitively ("pods", "pod", "po", "Pod").
func Lookup(name string) (*Kind, error) {
	n := strings.ToLower(name)
	for _, k := range Kinds {
		if n == strings.ToLower(k.Kind) || n == k.Resource || n == k.Singular {
			return k, nil
		}
		for _, s := range k.ShortNames {
			if n == s {
				return k, nil
			}
		}
	}
	return nil, fmt.Errorf("the server doesn't have a resource type %q; known: %s", name, strings.Join(ResourceNames(), ", "))
}

// ResourceNames lists the resources, sorted.
func ResourceNames() []string {
	var out []string
	for _, k := range Kinds {
		out = append(out, k.Resource)
	}
	sort.Strings(out)
	return out
}

// KindOf returns the Kind of a stored message.
func KindOf(o proto.Message) *Kind {
	name := string(o.ProtoReflect().Descriptor().Name())
	for _, k := range Kinds {
		if k.Kind == name {
			return k
		}
	}
	return nil
}

// EnsureMeta returns the object's metadata, creating it if absent.
func EnsureMeta(o Object) *v1.ObjectMeta {
	if m := o.GetMetadata(); m != nil {
		return m
	}
	m := &v1.ObjectMeta{}
	r := o.ProtoReflect()
	r.Set(r.Descriptor().Fields().ByName("metadata"), protoreflect.ValueOfMessage(m.ProtoReflect()))
	return m
}

// SetTypeMeta sets apiVersion and kind, as Kubernetes prints them.
func SetTypeMeta(o proto.Message, k *Kind) {
	r := o.ProtoReflect()
	f := r.Descriptor().Fields()
	r.Set(f.ByName("api_version"), protoreflect.ValueOfString(k.APIVersion))
	r.Set(f.ByName("kind"), protoreflect.ValueOfString(k.Kind))
}

// Field returns the message in field name of o ("spec", "status"), or nil.
func Field(o proto.Message, name protoreflect.Name) proto.Message {
	r := o.ProtoReflect()
	fd := r.Descriptor().Fields().ByName(name)
	if fd == nil || !r.Has(fd) {
		return nil
	}
	return r.Get(fd).Message().Interface()
}

// SetField sets (or, with nil, clears) the message field name of o.
func SetField(o proto.Message, name protoreflect.Name, v proto.Message) {
	r := o.ProtoReflect()
	fd := r.Descriptor().Fields().ByName(name)
	if fd == nil {
		return
	}
	if v == nil {
		r.Clear(fd)
		return
	}
	r.Set(fd, protoreflect.ValueOfMessage(v.ProtoReflect()))
}

// ListItems returns the items of an XList message.
func ListItems(list proto.Message) []Object {
	r := list.ProtoReflect()
	l := r.Get(r.Descriptor().Fields().ByName("items")).List()
	out := make([]Object, l.Len())
	for i := range out {
		out[i] = l.Get(i).Message().Interface().(Object)
	}
	return out
}

// SetListItems sets the items and resourceVersion of an XList message.
func SetListItems(list proto.Message, k *Kind, items []Object, rv string) {
	SetTypeMeta(list, k)
	r := list.ProtoReflect()
	fs := r.Descriptor().Fields()
	r.Set(fs.ByName("kind"), protoreflect.ValueOfString(k.Kind+"List"))
	r.Set(fs.ByName("metadata"), protoreflect.ValueOfMessage((&v1.ListMeta{ResourceVersion: rv}).ProtoReflect()))
	l := r.Mutable(fs.ByName("items")).List()
	for _, it := range items {
		l.Append(protoreflect.ValueOfMessage(it.ProtoReflect()))
	}
}

// ListRV returns the resourceVersion of an XList message.
func ListRV(list proto.Message) string {
	if m, ok := Field(list, "metadata").(*v1.ListMeta); ok {
		return m.GetResourceVersion()
	}
	return ""
}

// WatchEvent builds an XWatchEvent message.
func WatchEvent(k *Kind, typ string, o Object) proto.Message {
	ev := k.NewWatchEvent()
	r := ev.ProtoReflect()
	fs := r.Descriptor().Fields()
	r.Set(fs.ByName("type"), protoreflect.ValueOfString(typ))
	if o != nil {
		r.Set(fs.ByName("object"), protoreflect.ValueOfMessage(o.ProtoReflect()))
	}
	return ev
}

// WatchEventParts reads the type and object of an XWatchEvent message.
func WatchEventParts(ev proto.Message) (string, Object) {
	r := ev.ProtoReflect()
	fs := r.Descriptor().Fields()
	typ := r.Get(fs.ByName("type")).String()
	if !r.Has(fs.ByName("object")) {
		return typ, nil
	}
	return typ, r.Get(fs.ByName("object")).Message().Interface().(Object)
}

// Key is the etcd key of an object: /registry/<resource>/<namespace>/<name>,
// without the namespace for cluster-scoped kinds. All keys are built here.
func (k *Kind) Key(prefix, namespace, name string) string {
	if !k.Namespaced {
		return prefix + "/" + k.Resource + "/" + name
	}
	return prefix + "/" + k.Resource + "/" + namespace + "/" + name
}

// KeyPrefix is the prefix of every key of the kind in namespace (all
// namespaces when empty). It ends in "/".
func (k *Kind) KeyPrefix(prefix, namespace string) string {
	if !k.Namespaced || namespace == "" {
		return prefix + "/" + k.Resource + "/"
	}
	return prefix + "/" + k.Resource + "/" + namespace + "/"
}

// NamespacedName is "ns/name", or "name" for cluster-scoped objects.
func NamespacedName(o Object) string {
	m := o.GetMetadata()
	if m.GetNamespace() == "" {
		return m.GetName()
	}
	return m.GetNamespace() + "/" + m.GetName()
}
