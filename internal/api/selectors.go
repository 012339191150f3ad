package api

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"

	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

// Selector matches objects by namespace, labels and fields, as List and Watch do.
type Selector struct {
	Namespace string
	Labels    labels.Selector
	Fields    fields.Selector
}

// NewSelector parses Kubernetes label and field selector strings for kind k.
// A field selector may only name fields the kind supports.
func NewSelector(k *Kind, namespace, labelSel, fieldSel string) (*Selector, error) {
	ls, err := labels.Parse(labelSel)
	if err != nil {
		return nil, fmt.Errorf("labelSelector: Invalid value %q: %w", labelSel, err)
	}
	fs, err := fields.ParseSelector(fieldSel)
	if err != nil {
		return nil, fmt.Errorf("fieldSelector: Invalid value %q: %w", fieldSel, err)
	}
	supported := FieldNames(k)
	for _, r := range fs.Requirements() {
		if !contains(supported, r.Field) {
			return nil, fmt.Errorf("fieldSelector: field label %q not supported for %s; supported: %s", r.Field, k.Resource, strings.Join(supported, ", "))
		}
	}
	if !k.Namespaced {
		namespace = ""
	}
	return &Selector{Namespace: namespace, Labels: ls, Fields: fs}, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Matches reports whether o is selected.
func (s *Selector) Matches(o Object) bool {
	if s == nil {
		return true
	}
	m := o.GetMetadata()
	if s.Namespace != "" && m.GetNamespace() != s.Namespace {
		return false
	}
	if !s.Labels.Empty() && !s.Labels.Matches(labels.Set(m.GetLabels())) {
		return false
	}
	if !s.Fields.Empty() && !s.Fields.Matches(FieldSet(o)) {
		return false
	}
	return true
}

// FieldSet returns the fields of o a field selector can name.
func FieldSet(o Object) fields.Set {
	m := o.GetMetadata()
	set := fields.Set{"metadata.name": m.GetName(), "metadata.namespace": m.GetNamespace()}
	switch x := o.(type) {
	case *v1.Pod:
		set["spec.nodeName"] = x.GetSpec().GetNodeName()
		set["spec.restartPolicy"] = x.GetSpec().GetRestartPolicy()
		set["spec.schedulerName"] = x.GetSpec().GetSchedulerName()
		set["status.phase"] = x.GetStatus().GetPhase()
	case *v1.Node:
		set["spec.unschedulable"] = strconv.FormatBool(x.GetSpec().GetUnschedulable())
	case *v1.Event:
		io := x.GetInvolvedObject()
		set["involvedObject.kind"] = io.GetKind()
		set["involvedObject.name"] = io.GetName()
		set["involvedObject.namespace"] = io.GetNamespace()
		set["involvedObject.uid"] = io.GetUid()
		set["reason"] = x.GetReason()
		set["type"] = x.GetType()
	}
	return set
}

// fieldNames caches FieldNames per kind: every List and Watch asks.
var fieldNames sync.Map // *Kind -> []string

// FieldNames lists the fields a field selector may name for kind k.
func FieldNames(k *Kind) []string {
	if v, ok := fieldNames.Load(k); ok {
		return v.([]string)
	}
	names := make([]string, 0, 8)
	for f := range FieldSet(k.New()) {
		names = append(names, f)
	}
	sort.Strings(names)
	fieldNames.Store(k, names)
	return names
}

// LabelSelectorAsSelector converts a structured selector. A nil selector
// matches nothing, an empty one everything (as in Kubernetes).
func LabelSelectorAsSelector(ps *v1.LabelSelector) (labels.Selector, error) {
	if ps == nil {
		return labels.Nothing(), nil
	}
	sel := labels.NewSelector()
	keys := make([]string, 0, len(ps.GetMatchLabels()))
	for k := range ps.GetMatchLabels() {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		r, err := labels.NewRequirement(k, selection.Equals, []string{ps.GetMatchLabels()[k]})
		if err != nil {
			return nil, err
		}
		sel = sel.Add(*r)
	}
	for _, e := range ps.GetMatchExpressions() {
		var op selection.Operator
		switch e.GetOperator() {
		case "In":
			op = selection.In
		case "NotIn":
			op = selection.NotIn
		case "Exists":
			op = selection.Exists
		case "DoesNotExist":
			op = selection.DoesNotExist
		default:
			return nil, fmt.Errorf("%q is not a valid label selector operator (In, NotIn, Exists, DoesNotExist)", e.GetOperator())
		}
		r, err := labels.NewRequirement(e.GetKey(), op, e.GetValues())
		if err != nil {
			return nil, err
		}
		sel = sel.Add(*r)
	}
	return sel, nil
}
