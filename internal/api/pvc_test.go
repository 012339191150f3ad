package api

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation/field"

	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

func TestClaimTemplateNamesFitAnObjectName(t *testing.T) {
	set := func(name string, start, replicas int32) *v1.StatefulSet {
		s := &v1.StatefulSet{Metadata: &v1.ObjectMeta{Name: name}, Spec: &v1.StatefulSetSpec{Replicas: &replicas,
			VolumeClaimTemplates: []*v1.PersistentVolumeClaimTemplate{{Metadata: &v1.ObjectMeta{Name: strings.Repeat("c", 63)}}}}}
		if start != 0 {
			s.Spec.Ordinals = &v1.StatefulSetOrdinals{Start: start}
		}
		Default(s)
		return s
	}
	// 63 + 1 + 187 + 1 + 1 = 253: ordinals 0..9 fit, 10 does not.
	long := strings.Repeat("s", 187)
	cases := []struct {
		name            string
		start, replicas int32
		ok              bool
	}{
		{"ordinals 0..9 fit", 0, 10, true},
		{"ordinal 10 is one character too many", 0, 11, false},
		{"a start that pushes past 9", 5, 6, false},
		{"no replicas: ordinal 0 is checked", 0, 0, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			errs := validateClaimTemplates(long, set(long, c.start, c.replicas).Spec, field.NewPath("spec"))
			if (len(errs) == 0) != c.ok {
				t.Errorf("errors %v, want ok=%v", errs, c.ok)
			}
			if !c.ok && !strings.Contains(errs.ToAggregate().Error(), "spec.volumeClaimTemplates[0].metadata.name") {
				t.Errorf("error does not name the field: %v", errs)
			}
		})
	}
}

func TestClaimSpecValidation(t *testing.T) {
	good := &v1.PersistentVolumeClaimSpec{}
	DefaultClaimSpec(good)
	if errs := ValidateClaimSpec(good, field.NewPath("spec")); len(errs) != 0 {
		t.Fatalf("defaulted spec invalid: %v", errs)
	}
	sc := "Bad_Class"
	cases := []struct {
		name  string
		spec  *v1.PersistentVolumeClaimSpec
		field string
	}{
		{"no access mode", &v1.PersistentVolumeClaimSpec{Resources: good.Resources}, "spec.accessModes"},
		{"negative storage", &v1.PersistentVolumeClaimSpec{AccessModes: good.AccessModes, Resources: &v1.VolumeResourceRequirements{Requests: map[string]string{"storage": "-1Gi"}}}, "spec.resources.requests[storage]"},
		{"cpu is not a claim resource", &v1.PersistentVolumeClaimSpec{AccessModes: good.AccessModes, Resources: &v1.VolumeResourceRequirements{Requests: map[string]string{"storage": "1Gi", "cpu": "1"}}}, "spec.resources.requests[cpu]"},
		{"storage class not a name", &v1.PersistentVolumeClaimSpec{AccessModes: good.AccessModes, Resources: good.Resources, StorageClassName: &sc}, "spec.storageClassName"},
		{"volume name with a slash", &v1.PersistentVolumeClaimSpec{AccessModes: good.AccessModes, Resources: good.Resources, VolumeName: "a/b"}, "spec.volumeName"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			errs := ValidateClaimSpec(c.spec, field.NewPath("spec"))
			if len(errs) == 0 || !strings.Contains(errs.ToAggregate().Error(), c.field) {
				t.Errorf("errors %v, want one naming %s", errs, c.field)
			}
		})
	}
}
