package agent

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kubelite/kubelite/internal/client"
	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

// fakeStatusAPI answers UpdateStatus in the client itself (nothing is
// dialled): it records the phases sent, and holds a Running write until
// released, then fails it as an apiserver outage would.
type fakeStatusAPI struct {
	mu      sync.Mutex
	sent    []string // phases, in the order they reached the "apiserver"
	didHold bool     // the first Running write was held
	held    chan struct{}
	release chan struct{}
}

func (f *fakeStatusAPI) intercept(ctx context.Context, method string, req, reply any, _ *grpc.ClientConn, _ grpc.UnaryInvoker, _ ...grpc.CallOption) error {
	if !strings.HasSuffix(method, "UpdateStatus") {
		return status.Error(codes.Unimplemented, method)
	}
	phase := req.(*v1.Pod).GetStatus().GetPhase()
	f.mu.Lock()
	hold := phase == "Running" && !f.didHold
	f.didHold = f.didHold || hold
	if !hold {
		f.sent = append(f.sent, phase)
	}
	f.mu.Unlock()
	if hold {
		close(f.held)
		<-f.release
		return status.Error(codes.Unavailable, "connection refused")
	}
	return nil
}

func (f *fakeStatusAPI) phases() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.sent...)
}

func newFakeStatusManager(t *testing.T) (*statusManager, *fakeStatusAPI, context.Context) {
	f := &fakeStatusAPI{held: make(chan struct{}), release: make(chan struct{})}
	c, err := client.New("127.0.0.1:1", grpc.WithUnaryInterceptor(f.intercept))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	m := newStatusManager(c)
	go m.run(ctx)
	return m, f, ctx
}

var statusTestPod = &v1.Pod{Metadata: &v1.ObjectMeta{Name: "p", Namespace: "default", Uid: "u1"}, Status: &v1.PodStatus{Phase: "Pending"}}

// A queued Running write fails during an outage while the final delete
// writes the terminal status: the Running status must not be retried
// after it (it was re-queued because Write had emptied the queue).
func TestStatusManagerDoesNotRetryAStaleStatusAfterWrite(t *testing.T) {
	m, f, ctx := newFakeStatusManager(t)
	m.Set(statusTestPod, &v1.PodStatus{Phase: "Running"})
	<-f.held // the Running write is on the wire
	done := make(chan error, 1)
	go func() { done <- m.Write(ctx, statusTestPod, &v1.PodStatus{Phase: "Succeeded"}) }()
	// Let Write reach the manager before the outage answers the batch write.
	time.Sleep(100 * time.Millisecond)
	close(f.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// A retry would come about a second after the failure; give it three.
	time.Sleep(3 * time.Second)
	if got := f.phases(); len(got) != 1 || got[0] != "Succeeded" {
		t.Fatalf("statuses written: %v, want only [Succeeded] (a stale Running landed after the terminal status)", got)
	}
}

// After Forget, a failed write of the pod is not retried.
func TestStatusManagerDoesNotRetryAfterForget(t *testing.T) {
	m, f, _ := newFakeStatusManager(t)
	m.Set(statusTestPod, &v1.PodStatus{Phase: "Running"})
	<-f.held
	m.Forget(statusTestPod.Metadata.Uid)
	close(f.release)
	time.Sleep(3 * time.Second)
	if got := f.phases(); len(got) != 0 {
		t.Fatalf("statuses written after Forget: %v, want none", got)
	}
}

// A write that fails with nothing newer is retried (the outage ends).
func TestStatusManagerRetriesAFailedWrite(t *testing.T) {
	m, f, _ := newFakeStatusManager(t)
	m.Set(statusTestPod, &v1.PodStatus{Phase: "Running"})
	<-f.held
	close(f.release)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if got := f.phases(); len(got) == 1 && got[0] == "Running" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("statuses written: %v, want the Running status retried", f.phases())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
