package server_test

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/kubelite/kubelite/apiserver/apiservertest"
	"github.com/kubelite/kubelite/internal/api"
	"github.com/kubelite/kubelite/internal/client"
	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

func TestClaimIsProtectedDefaultedAndValidated(t *testing.T) {
	s := apiservertest.Start(t, apiservertest.Options{})
	claims := s.Client.PersistentVolumeClaims()
	c, err := claims.Create(ctx(t), &v1.PersistentVolumeClaim{Metadata: &v1.ObjectMeta{Name: "data"}})
	if err != nil {
		t.Fatal(err)
	}
	if c.Status.GetPhase() != "Pending" || len(c.Metadata.Finalizers) != 1 || c.Metadata.Finalizers[0] != api.FinalizerPVCProtection {
		t.Errorf("created claim: phase %q finalizers %v, want Pending and [%s]", c.Status.GetPhase(), c.Metadata.Finalizers, api.FinalizerPVCProtection)
	}
	if got := c.Spec.GetAccessModes(); len(got) != 1 || got[0] != "ReadWriteOnce" || c.Spec.GetResources().GetRequests()["storage"] != api.DefaultClaimStorage {
		t.Errorf("defaults missing: %v", c.Spec)
	}

	// Deleting it leaves it Terminating until the finalizer goes.
	del, err := claims.Delete(ctx(t), "default", "data", nil)
	if err != nil {
		t.Fatal(err)
	}
	if del.Metadata.DeletionTimestamp == nil {
		t.Fatal("a protected claim was removed at once")
	}
	if _, err := claims.Get(ctx(t), "default", "data"); err != nil {
		t.Fatalf("claim gone while protected: %v", err)
	}
	del.Metadata.Finalizers = nil
	if _, err := claims.Update(ctx(t), del); err != nil {
		t.Fatal(err)
	}
	_, err = claims.Get(ctx(t), "default", "data")
	wantCode(t, err, codes.NotFound)

	bad := []struct {
		name  string
		claim *v1.PersistentVolumeClaim
		field string
	}{
		{"storage not a quantity", &v1.PersistentVolumeClaim{Metadata: &v1.ObjectMeta{Name: "a"},
			Spec: &v1.PersistentVolumeClaimSpec{Resources: &v1.VolumeResourceRequirements{Requests: map[string]string{"storage": "lots"}}}}, "spec.resources.requests[storage]"},
		{"storage zero", &v1.PersistentVolumeClaim{Metadata: &v1.ObjectMeta{Name: "a"},
			Spec: &v1.PersistentVolumeClaimSpec{Resources: &v1.VolumeResourceRequirements{Requests: map[string]string{"storage": "0"}}}}, "spec.resources.requests[storage]"},
		{"unknown access mode", &v1.PersistentVolumeClaim{Metadata: &v1.ObjectMeta{Name: "a"},
			Spec: &v1.PersistentVolumeClaimSpec{AccessModes: []string{"ReadWriteSometimes"}}}, "spec.accessModes[0]"},
		{"name with a slash", &v1.PersistentVolumeClaim{Metadata: &v1.ObjectMeta{Name: "../x"}}, "metadata.name"},
	}
	for _, b := range bad {
		_, err := claims.Create(ctx(t), b.claim)
		if !client.IsInvalid(err) || !strings.Contains(err.Error(), b.field) {
			t.Errorf("%s: error %v, want InvalidArgument naming %s", b.name, err, b.field)
		}
	}
	if list, _, err := claims.List(ctx(t), &v1.ListRequest{}); err != nil || len(list) != 0 {
		t.Errorf("refused claims were written: %v %v", list, err)
	}

	// The spec is immutable.
	c, err = claims.Create(ctx(t), &v1.PersistentVolumeClaim{Metadata: &v1.ObjectMeta{Name: "keep"}})
	if err != nil {
		t.Fatal(err)
	}
	c.Spec.Resources.Requests["storage"] = "2Gi"
	_, err = claims.Update(ctx(t), c)
	if !client.IsInvalid(err) || !strings.Contains(err.Error(), "spec") {
		t.Errorf("spec update: %v, want InvalidArgument", err)
	}
}

func TestPodClaimNameMustBeAnObjectName(t *testing.T) {
	s := apiservertest.Start(t, apiservertest.Options{})
	for _, name := range []string{"../x", "a/b", "", strings.Repeat("a", 254)} {
		p := pod("p", nil)
		p.Spec.Volumes = []*v1.Volume{{Name: "data", PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{ClaimName: name}}}
		_, err := s.Client.Pods().Create(ctx(t), p)
		if !client.IsInvalid(err) || !strings.Contains(err.Error(), "spec.volumes[0].persistentVolumeClaim.claimName") {
			t.Errorf("claimName %q: error %v, want InvalidArgument naming spec.volumes[0].persistentVolumeClaim.claimName", name, err)
		}
	}
	p := pod("p", nil)
	p.Spec.Volumes = []*v1.Volume{{Name: "data", PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{ClaimName: "data-web-0"}}}
	if _, err := s.Client.Pods().Create(ctx(t), p); err != nil {
		t.Errorf("a valid claimName was refused: %v", err)
	}
}

func TestStatefulSetClaimTemplatesAreDefaulted(t *testing.T) {
	s := apiservertest.Start(t, apiservertest.Options{})
	replicas := int32(1)
	created, err := s.Client.StatefulSets().Create(ctx(t), &v1.StatefulSet{Metadata: &v1.ObjectMeta{Name: "web"}, Spec: &v1.StatefulSetSpec{
		Replicas: &replicas, Selector: &v1.LabelSelector{MatchLabels: map[string]string{"app": "x"}},
		VolumeClaimTemplates: []*v1.PersistentVolumeClaimTemplate{{Metadata: &v1.ObjectMeta{Name: "data"}}},
		Template: &v1.PodTemplateSpec{Metadata: &v1.ObjectMeta{Labels: map[string]string{"app": "x"}},
			Spec: &v1.PodSpec{Containers: []*v1.Container{{Name: "c", Command: []string{"sleep", "1"}}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	ts := created.Spec.VolumeClaimTemplates[0].GetSpec()
	if ts.GetResources().GetRequests()["storage"] != api.DefaultClaimStorage || len(ts.GetAccessModes()) != 1 {
		t.Errorf("claim template not defaulted: %v", ts)
	}
}
