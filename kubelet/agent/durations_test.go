package agent_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kubelite/kubelite/apiserver/apiservertest"
	"github.com/kubelite/kubelite/internal/api"
	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

// rewriteStored changes a pod in etcd behind the apiserver's back, as an
// object stored before validation bounded a field would be read.
func rewriteStored(t *testing.T, srv *apiservertest.Server, key string, change func(*v1.Pod)) {
	t.Helper()
	ec, err := clientv3.New(clientv3.Config{Endpoints: []string{srv.EtcdURL}, DialTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer ec.Close()
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := ec.Get(c, key)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 1 {
		t.Fatalf("%s: %d keys", key, len(resp.Kvs))
	}
	o, err := api.Decode(resp.Kvs[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	p := o.(*v1.Pod)
	change(p)
	b, err := api.Encode(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ec.Put(c, key, string(b)); err != nil {
		t.Fatal(err)
	}
}

// A pod stored with activeDeadlineSeconds and a grace period of 9999999999
// (no longer accepted, but still stored somewhere): the kubelet saturates
// the durations, so the deadline is "about forever" instead of a negative
// one that kills at once, and the grace period still means SIGTERM first.
// The deletion itself is written to etcd directly with
// deletionGracePeriodSeconds 9999999999, as an apiserver from before the
// bounds stored it: the apiserver's Delete would cap the grace today, and
// the kubelet must not rely on that.
func TestHugeStoredDurationsDoNotOverflow(t *testing.T) {
	srv, _ := setup(t)
	marks := t.TempDir()
	term := filepath.Join(marks, "term")
	p := pod("forever", "Always", "sh", "-c", "trap 'echo term > "+term+"; exit 0' TERM; while true; do sleep 0.1; done")
	p.Spec.NodeName = "" // unbound: the kubelet sees it only once rewritten
	create(t, srv, p)
	rewriteStored(t, srv, "/registry/pods/default/forever", func(p *v1.Pod) {
		huge := int64(9999999999)
		p.Spec.NodeName = "node-1"
		p.Spec.ActiveDeadlineSeconds = &huge
		p.Spec.TerminationGracePeriodSeconds = &huge
	})
	waitPod(t, srv, "forever", "Running and ready", func(p *v1.Pod) bool {
		return p.Status.GetPhase() == "Running" && cs(p).Ready
	})
	got, err := srv.Client.Pods().Get(ctx(), "default", "forever")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status.Phase != "Running" || got.Status.Reason != "" || cs(got).State.GetRunning() == nil {
		t.Fatalf("activeDeadlineSeconds 9999999999 ended the pod: phase %s, reason %q, state %v", got.Status.Phase, got.Status.Reason, cs(got).State)
	}
	rewriteStored(t, srv, "/registry/pods/default/forever", func(p *v1.Pod) {
		huge := int64(9999999999)
		p.Metadata.DeletionTimestamp = timestamppb.New(time.Now().Add(time.Hour))
		p.Metadata.DeletionGracePeriodSeconds = &huge
	})
	waitGone(t, srv, "forever")
	if b, _ := os.ReadFile(term); string(b) != "term\n" {
		t.Errorf("with a grace period of 9999999999 s the container got no SIGTERM before it ended (mark %q)", b)
	}
}
