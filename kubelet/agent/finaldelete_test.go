package agent

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubelite/kubelite/internal/client"
	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

// warnCounter counts warning records per message.
type warnCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (h *warnCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h *warnCounter) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *warnCounter) WithGroup(string) slog.Handler            { return h }
func (h *warnCounter) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		h.mu.Lock()
		h.n[r.Message]++
		h.mu.Unlock()
	}
	return nil
}

// An apiserver that refuses the final status and delete for good
// (InvalidArgument): the kubelet keeps retrying, but warns once, not at
// every attempt.
func TestFinalDeleteRetriesAPermanentErrorWithoutFloodingTheLog(t *testing.T) {
	var deletes atomic.Int64
	refuse := func(_ context.Context, method string, _, _ any, _ *grpc.ClientConn, _ grpc.UnaryInvoker, _ ...grpc.CallOption) error {
		if strings.HasSuffix(method, "Delete") {
			deletes.Add(1)
		}
		return status.Error(codes.InvalidArgument, "refused")
	}
	c, err := client.New("127.0.0.1:1", grpc.WithUnaryInterceptor(refuse))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	oldBackoff := finalDeleteBackoff
	finalDeleteBackoff = wait.Backoff{Duration: time.Millisecond, Factor: 1, Steps: 1 << 30, Cap: time.Millisecond}
	defer func() { finalDeleteBackoff = oldBackoff }()
	warns := &warnCounter{n: map[string]int{}}
	oldLog := slog.Default()
	slog.SetDefault(slog.New(warns))
	defer slog.SetDefault(oldLog)

	pod := &v1.Pod{Metadata: &v1.ObjectMeta{Name: "p", Namespace: "default", Uid: "u1"}, Spec: &v1.PodSpec{}}
	w := &podWorker{k: &Kubelet{c: c, status: newStatusManager(c)}, uid: "u1", wakeCh: make(chan struct{}, 1), pod: pod}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan bool, 1)
	go func() { done <- w.finalDelete(ctx, pod, &v1.PodStatus{Phase: "Succeeded"}) }()
	deadline := time.Now().Add(time.Minute)
	for deletes.Load() < 20 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d delete attempts", deletes.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if <-done {
		t.Fatal("finalDelete reported success against an apiserver that refuses it")
	}
	warns.mu.Lock()
	defer warns.mu.Unlock()
	for _, msg := range []string{"cannot write the final pod status", "cannot delete the pod after stopping it; will retry"} {
		if got := warns.n[msg]; got != 1 {
			t.Errorf("%q logged %d times as a warning over %d attempts, want once", msg, got, deletes.Load())
		}
	}
}

// After its period the limiter warns again, counting what it held back.
func TestLogLimiterWarnsAgainAfterItsPeriod(t *testing.T) {
	warns := &warnCounter{n: map[string]int{}}
	oldLog := slog.Default()
	slog.SetDefault(slog.New(warns))
	defer slog.SetDefault(oldLog)
	l := logLimiter{every: 20 * time.Millisecond}
	calls := 0
	for start := time.Now(); time.Since(start) < 200*time.Millisecond; calls++ {
		l.log("m")
		time.Sleep(time.Millisecond)
	}
	warns.mu.Lock()
	defer warns.mu.Unlock()
	if got := warns.n["m"]; got < 2 || got >= calls {
		t.Errorf("%d warnings over %d calls in 200ms with a 20ms period, want at least 2 and fewer than the calls", got, calls)
	}
}
