package server_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/kubelite/kubelite/apiserver/apiservertest"
	"github.com/kubelite/kubelite/apiserver/server"
	"github.com/kubelite/kubelite/internal/client"
	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func pod(name string, labels map[string]string) *v1.Pod {
	return &v1.Pod{
		Metadata: &v1.ObjectMeta{Name: name, Labels: labels},
		Spec:     &v1.PodSpec{Containers: []*v1.Container{{Name: "c", Command: []string{"sleep", "100"}}}},
	}
}

func etcdClient(t *testing.T, url string) *clientv3.Client {
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{url}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func wantCode(t *testing.T, err error, code codes.Code) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("error = %v, want code %s", err, code)
	}
}

func TestCreateGetListWithDefaultsAndSelectors(t *testing.T) {
	s := apiservertest.Start(t, apiservertest.Options{})
	pods := s.Client.Pods()
	created, err := pods.Create(ctx(t), pod("web", map[string]string{"app": "web"}))
	if err != nil {
		t.Fatal(err)
	}
	m := created.Metadata
	if m.Uid == "" || m.ResourceVersion == "" || m.CreationTimestamp == nil || m.Namespace != "default" || m.Generation != 1 {
		t.Errorf("server-set metadata missing: %v", m)
	}
	if created.Spec.RestartPolicy != "Always" || created.Spec.GetTerminationGracePeriodSeconds() != 30 || created.Status.GetPhase() != "Pending" {
		t.Errorf("defaults missing: spec %v status %v", created.Spec, created.Status)
	}
	got, err := pods.Get(ctx(t), "default", "web")
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, created) {
		t.Errorf("Get differs from Create's answer:\n%v\n%v", got, created)
	}
	_, err = pods.Create(ctx(t), pod("web", nil))
	wantCode(t, err, codes.AlreadyExists)

	db := pod("db", map[string]string{"app": "db"})
	db.Spec.NodeName = "node-1"
	if _, err := pods.Create(ctx(t), db); err != nil {
		t.Fatal(err)
	}
	other := pod("web", map[string]string{"app": "web"})
	other.Metadata.Namespace = "team-b"
	if _, err := pods.Create(ctx(t), other); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		req  *v1.ListRequest
		want []string
	}{
		{&v1.ListRequest{Namespace: "default"}, []string{"default/db", "default/web"}},
		{&v1.ListRequest{}, []string{"default/db", "default/web", "team-b/web"}},
		{&v1.ListRequest{LabelSelector: "app=web"}, []string{"default/web", "team-b/web"}},
		{&v1.ListRequest{FieldSelector: "spec.nodeName=node-1"}, []string{"default/db"}},
		{&v1.ListRequest{FieldSelector: "spec.nodeName="}, []string{"default/web", "team-b/web"}},
		{&v1.ListRequest{FieldSelector: "status.phase=Pending,metadata.name=db"}, []string{"default/db"}},
	}
	for _, c := range cases {
		items, rv, err := pods.List(ctx(t), c.req)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, p := range items {
			names = append(names, p.Metadata.Namespace+"/"+p.Metadata.Name)
		}
		if strings.Join(names, " ") != strings.Join(c.want, " ") || rv == "" {
			t.Errorf("List(%v) = %v at rv %q, want %v", c.req, names, rv, c.want)
		}
	}
	_, _, err = pods.List(ctx(t), &v1.ListRequest{FieldSelector: "spec.bogus=1"})
	wantCode(t, err, codes.InvalidArgument)
	_, err = pods.Get(ctx(t), "default", "nope")
	wantCode(t, err, codes.NotFound)
}

func TestInvalidObjectListsEveryProblemAndWritesNothing(t *testing.T) {
	s := apiservertest.Start(t, apiservertest.Options{})
	bad := pod("Bad_Name", map[string]string{"app": "bad value!"})
	bad.Spec.RestartPolicy = "Sometimes"
	bad.Spec.Containers[0].Command = nil
	bad.Spec.Containers[0].Resources = &v1.ResourceRequirements{Requests: map[string]string{"cpu": "lots"}}
	_, err := s.Client.Pods().Create(ctx(t), bad)
	wantCode(t, err, codes.InvalidArgument)
	for _, path := range []string{"metadata.name", "metadata.labels", "spec.restartPolicy", "spec.containers[0].command", "spec.containers[0].resources.requests[cpu]"} {
		if !strings.Contains(err.Error(), path) {
			t.Errorf("error does not name %s: %v", path, err)
		}
	}
	resp, err := etcdClient(t, s.EtcdURL).Get(ctx(t), "/registry/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if resp.Count != 0 {
		t.Errorf("a rejected write left %d keys in etcd", resp.Count)
	}
}

func TestUpdateConflictsGenerationAndStatus(t *testing.T) {
	s := apiservertest.Start(t, apiservertest.Options{})
	nodes := s.Client.Nodes()
	n, err := nodes.Create(ctx(t), &v1.Node{Metadata: &v1.ObjectMeta{Name: "node-1"}, Status: &v1.NodeStatus{Capacity: map[string]string{"cpu": "2"}}})
	if err != nil {
		t.Fatal(err)
	}
	stale := proto.Clone(n).(*v1.Node)

	// A label change keeps the generation; a spec change bumps it.
	n.Metadata.Labels = map[string]string{"zone": "a"}
	n, err = nodes.Update(ctx(t), n)
	if err != nil {
		t.Fatal(err)
	}
	if n.Metadata.Generation != 1 {
		t.Errorf("generation after a label change = %d, want 1", n.Metadata.Generation)
	}
	n.Spec = &v1.NodeSpec{Unschedulable: true}
	n, err = nodes.Update(ctx(t), n)
	if err != nil {
		t.Fatal(err)
	}
	if n.Metadata.Generation != 2 {
		t.Errorf("generation after a spec change = %d, want 2", n.Metadata.Generation)
	}

	// A write with a stale resourceVersion is a conflict, never a lost update.
	stale.Metadata.Labels = map[string]string{"zone": "b"}
	_, err = nodes.Update(ctx(t), stale)
	wantCode(t, err, codes.Aborted)

	// Update does not touch status; UpdateStatus touches only status.
	n.Status = &v1.NodeStatus{Capacity: map[string]string{"cpu": "64"}}
	n, err = nodes.Update(ctx(t), n)
	if err != nil {
		t.Fatal(err)
	}
	if n.Status.Capacity["cpu"] != "2" {
		t.Errorf("Update changed status: %v", n.Status)
	}
	n.Status = &v1.NodeStatus{Capacity: map[string]string{"cpu": "8"}}
	n.Spec.Unschedulable = false
	n, err = nodes.UpdateStatus(ctx(t), n)
	if err != nil {
		t.Fatal(err)
	}
	if n.Status.Capacity["cpu"] != "8" || !n.Spec.Unschedulable {
		t.Errorf("UpdateStatus: status %v spec %v", n.Status, n.Spec)
	}

	// A write that changes nothing keeps the resourceVersion.
	again, err := nodes.Update(ctx(t), n)
	if err != nil {
		t.Fatal(err)
	}
	if again.Metadata.ResourceVersion != n.Metadata.ResourceVersion {
		t.Errorf("a no-op update wrote: rv %s -> %s", n.Metadata.ResourceVersion, again.Metadata.ResourceVersion)
	}

	// Pod specs are immutable but for a few fields.
	p, err := s.Client.Pods().Create(ctx(t), pod("p", nil))
	if err != nil {
		t.Fatal(err)
	}
	p.Spec.Containers[0].Command = []string{"other"}
	_, err = s.Client.Pods().Update(ctx(t), p)
	wantCode(t, err, codes.InvalidArgument)
}

type event struct{ typ, name, rv string }

func recv(t *testing.T, w *client.WatchStream[*v1.Pod], n int) []event {
	t.Helper()
	var out []event
	for len(out) < n {
		typ, p, err := w.Recv()
		if err != nil {
			t.Fatalf("after %v: %v", out, err)
		}
		out = append(out, event{typ, p.Metadata.Name, p.Metadata.ResourceVersion})
	}
	return out
}

func TestWatchFromRevisionAndWithSelectors(t *testing.T) {
	s := apiservertest.Start(t, apiservertest.Options{})
	pods := s.Client.Pods()
	a, err := pods.Create(ctx(t), pod("a", map[string]string{"app": "x"}))
	if err != nil {
		t.Fatal(err)
	}
	from := a.Metadata.ResourceVersion
	if _, err := pods.Create(ctx(t), pod("b", map[string]string{"app": "x"})); err != nil {
		t.Fatal(err)
	}
	a.Metadata.Labels = map[string]string{"app": "y"}
	if _, err := pods.Update(ctx(t), a); err != nil {
		t.Fatal(err)
	}
	if _, err := pods.Delete(ctx(t), "default", "b", nil); err != nil {
		t.Fatal(err)
	}

	w, err := pods.Watch(ctx(t), &v1.WatchRequest{ResourceVersion: from})
	if err != nil {
		t.Fatal(err)
	}
	got := recv(t, w, 3)
	w.Stop()
	want := []string{"ADDED b", "MODIFIED a", "DELETED b"}
	for i, e := range got {
		if e.typ+" "+e.name != want[i] {
			t.Errorf("event %d = %s %s, want %s", i, e.typ, e.name, want[i])
		}
	}

	// Without a resourceVersion: the current state as ADDED, then changes.
	// With a selector, an object that stops matching is DELETED.
	sel, err := pods.Watch(ctx(t), &v1.WatchRequest{LabelSelector: "app=y"})
	if err != nil {
		t.Fatal(err)
	}
	defer sel.Stop()
	if e := recv(t, sel, 1)[0]; e.typ != "ADDED" || e.name != "a" {
		t.Errorf("initial event = %v, want ADDED a", e)
	}
	cur, _ := pods.Get(ctx(t), "default", "a")
	cur.Metadata.Labels = map[string]string{"app": "z"}
	if _, err := pods.Update(ctx(t), cur); err != nil {
		t.Fatal(err)
	}
	if e := recv(t, sel, 1)[0]; e.typ != "DELETED" || e.name != "a" {
		t.Errorf("event for a label change out of the selector = %v, want DELETED a", e)
	}
}

func TestWatchFromCompactedRevisionIsTooOld(t *testing.T) {
	s := apiservertest.Start(t, apiservertest.Options{})
	pods := s.Client.Pods()
	first, err := pods.Create(ctx(t), pod("a", nil))
	if err != nil {
		t.Fatal(err)
	}
	var last *v1.Pod
	for i := 0; i < 5; i++ {
		if last, err = pods.Create(ctx(t), pod(fmt.Sprintf("p%d", i), nil)); err != nil {
			t.Fatal(err)
		}
	}
	var rev int64
	fmt.Sscan(last.Metadata.ResourceVersion, &rev)
	if _, err := etcdClient(t, s.EtcdURL).Compact(ctx(t), rev); err != nil {
		t.Fatal(err)
	}
	_, err = pods.Watch(ctx(t), &v1.WatchRequest{ResourceVersion: first.Metadata.ResourceVersion})
	wantCode(t, err, codes.OutOfRange)
	if !strings.Contains(err.Error(), "too old resource version") {
		t.Errorf("error = %v, want it to say too old resource version", err)
	}
	// Watching from the compaction revision itself still works.
	w, err := pods.Watch(ctx(t), &v1.WatchRequest{ResourceVersion: last.Metadata.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	w.Stop()
}

func TestGracefulAndForcedDeletion(t *testing.T) {
	s := apiservertest.Start(t, apiservertest.Options{})
	pods := s.Client.Pods()
	bound := pod("bound", nil)
	bound.Spec.NodeName = "node-1"
	g := int64(20)
	bound.Spec.TerminationGracePeriodSeconds = &g
	created, err := pods.Create(ctx(t), bound)
	if err != nil {
		t.Fatal(err)
	}

	// A bound, running pod is not removed: it gets a deletionTimestamp.
	before := time.Now()
	d, err := pods.Delete(ctx(t), "default", "bound", nil)
	if err != nil {
		t.Fatal(err)
	}
	if d.Metadata.DeletionTimestamp == nil || d.Metadata.GetDeletionGracePeriodSeconds() != 20 {
		t.Fatalf("graceful delete: deletionTimestamp %v grace %d", d.Metadata.DeletionTimestamp, d.Metadata.GetDeletionGracePeriodSeconds())
	}
	if dt := d.Metadata.DeletionTimestamp.AsTime(); dt.Before(before.Add(19*time.Second)) || dt.After(time.Now().Add(21*time.Second)) {
		t.Errorf("deletionTimestamp %v is not now+20s", dt)
	}
	if d.Metadata.Generation != created.Metadata.Generation+1 {
		t.Errorf("generation not bumped by graceful delete")
	}
	if _, err := pods.Get(ctx(t), "default", "bound"); err != nil {
		t.Fatalf("gracefully deleted pod vanished: %v", err)
	}

	// A later delete may shorten the grace, never lengthen it.
	long := int64(60)
	d2, err := pods.Delete(ctx(t), "default", "bound", &v1.DeleteOptions{GracePeriodSeconds: &long})
	if err != nil {
		t.Fatal(err)
	}
	if d2.Metadata.GetDeletionGracePeriodSeconds() != 20 {
		t.Errorf("a longer grace replaced a shorter one: %d", d2.Metadata.GetDeletionGracePeriodSeconds())
	}
	short := int64(5)
	d3, err := pods.Delete(ctx(t), "default", "bound", &v1.DeleteOptions{GracePeriodSeconds: &short})
	if err != nil {
		t.Fatal(err)
	}
	if d3.Metadata.GetDeletionGracePeriodSeconds() != 5 {
		t.Errorf("grace not shortened: %d", d3.Metadata.GetDeletionGracePeriodSeconds())
	}

	// A uid precondition that does not hold fails; grace 0 with the right one removes.
	wrong := "not-the-uid"
	zero := int64(0)
	_, err = pods.Delete(ctx(t), "default", "bound", &v1.DeleteOptions{GracePeriodSeconds: &zero, Preconditions: &v1.Preconditions{Uid: &wrong}})
	wantCode(t, err, codes.Aborted)
	uid := created.Metadata.Uid
	if _, err := pods.Delete(ctx(t), "default", "bound", &v1.DeleteOptions{GracePeriodSeconds: &zero, Preconditions: &v1.Preconditions{Uid: &uid}}); err != nil {
		t.Fatal(err)
	}
	_, err = pods.Get(ctx(t), "default", "bound")
	wantCode(t, err, codes.NotFound)

	// An unbound pod and a terminal pod go at once.
	if _, err := pods.Create(ctx(t), pod("unbound", nil)); err != nil {
		t.Fatal(err)
	}
	if _, err := pods.Delete(ctx(t), "default", "unbound", nil); err != nil {
		t.Fatal(err)
	}
	_, err = pods.Get(ctx(t), "default", "unbound")
	wantCode(t, err, codes.NotFound)

	done := pod("done", nil)
	done.Spec.NodeName = "node-1"
	done, err = pods.Create(ctx(t), done)
	if err != nil {
		t.Fatal(err)
	}
	done.Status = &v1.PodStatus{Phase: "Succeeded"}
	if _, err := pods.UpdateStatus(ctx(t), done); err != nil {
		t.Fatal(err)
	}
	if _, err := pods.Delete(ctx(t), "default", "done", nil); err != nil {
		t.Fatal(err)
	}
	_, err = pods.Get(ctx(t), "default", "done")
	wantCode(t, err, codes.NotFound)
}

func TestFinalizersHoldAnObject(t *testing.T) {
	s := apiservertest.Start(t, apiservertest.Options{})
	nodes := s.Client.Nodes()
	if _, err := nodes.Create(ctx(t), &v1.Node{Metadata: &v1.ObjectMeta{Name: "n1", Finalizers: []string{"example.com/hold"}}}); err != nil {
		t.Fatal(err)
	}
	d, err := nodes.Delete(ctx(t), "", "n1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if d.Metadata.DeletionTimestamp == nil {
		t.Fatal("an object with finalizers has no deletionTimestamp after delete")
	}
	n, err := nodes.Get(ctx(t), "", "n1")
	if err != nil {
		t.Fatalf("an object with finalizers was removed: %v", err)
	}
	n.Metadata.Finalizers = append(n.Metadata.Finalizers, "example.com/another")
	_, err = nodes.Update(ctx(t), n)
	wantCode(t, err, codes.InvalidArgument)
	n.Metadata.Finalizers = nil
	if _, err := nodes.Update(ctx(t), n); err != nil {
		t.Fatal(err)
	}
	_, err = nodes.Get(ctx(t), "", "n1")
	wantCode(t, err, codes.NotFound)
}

func TestBindNeverRebinds(t *testing.T) {
	s := apiservertest.Start(t, apiservertest.Options{})
	if _, err := s.Client.Pods().Create(ctx(t), pod("p", nil)); err != nil {
		t.Fatal(err)
	}
	p, err := s.Client.Bind(ctx(t), "default", "p", "", "node-1")
	if err != nil {
		t.Fatal(err)
	}
	if p.Spec.NodeName != "node-1" {
		t.Errorf("nodeName = %q", p.Spec.NodeName)
	}
	scheduled := false
	for _, c := range p.Status.Conditions {
		scheduled = scheduled || (c.Type == "PodScheduled" && c.Status == "True")
	}
	if !scheduled {
		t.Errorf("no PodScheduled=True condition: %v", p.Status.Conditions)
	}
	_, err = s.Client.Bind(ctx(t), "default", "p", "", "node-2")
	wantCode(t, err, codes.Aborted)
}

func TestEventsExpireThroughALease(t *testing.T) {
	s := apiservertest.Start(t, apiservertest.Options{})
	ev := &v1.Event{Metadata: &v1.ObjectMeta{Name: "p.1"}, InvolvedObject: &v1.ObjectReference{Kind: "Pod", Name: "p", Namespace: "default"}, Reason: "Scheduled", Type: "Normal"}
	if _, err := s.Client.Events().Create(ctx(t), ev); err != nil {
		t.Fatal(err)
	}
	resp, err := etcdClient(t, s.EtcdURL).Get(ctx(t), "/registry/events/default/p.1")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("event key: %v %v", resp, err)
	}
	if resp.Kvs[0].Lease == 0 {
		t.Error("the event was stored without a lease, so it never expires")
	}
}

func TestExternalEtcdEndpoints(t *testing.T) {
	dir := t.TempDir()
	cu := fmt.Sprintf("http://127.0.0.1:%d", apiservertest.FreePort(t))
	pu := fmt.Sprintf("http://127.0.0.1:%d", apiservertest.FreePort(t))
	e, err := server.StartEmbeddedEtcd(dir, cu, pu)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	s := apiservertest.Start(t, apiservertest.Options{EtcdEndpoints: []string{cu}})
	if s.EtcdURL != "" {
		t.Fatal("an apiserver given --etcd-endpoints embedded etcd anyway")
	}
	if _, err := s.Client.Pods().Create(ctx(t), pod("ext", nil)); err != nil {
		t.Fatal(err)
	}
	resp, err := etcdClient(t, cu).Get(ctx(t), "/registry/pods/default/ext")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("the pod is not in the external etcd: %v %v", resp, err)
	}
	s.Stop()
}
