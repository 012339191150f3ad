package agent

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/kubelite/kubelite/internal/client"
	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

// statusManager writes pod statuses: the latest one per pod wins (writes
// are coalesced), unchanged ones are skipped, failures retry. The kubelet
// writes only pod status, never spec.
type statusManager struct {
	c    *client.Client
	wake chan struct{}

	mu      sync.Mutex               // guards pending and written
	pending map[string]*v1.Pod       // uid -> pod carrying the status to write
	written map[string]*v1.PodStatus // uid -> last status the apiserver took
}

func newStatusManager(c *client.Client) *statusManager {
	return &statusManager{c: c, wake: make(chan struct{}, 1), pending: map[string]*v1.Pod{}}
}

// statusPod is the minimal pod an UpdateStatus needs: identity (the uid is
// a precondition) and status.
func statusPod(pod *v1.Pod, st *v1.PodStatus) *v1.Pod {
	m := pod.GetMetadata()
	return &v1.Pod{Metadata: &v1.ObjectMeta{Name: m.Name, Namespace: m.Namespace, Uid: m.Uid}, Status: st}
}

// Set queues a status for the pod unless the apiserver already has it
// (pod is the kubelet's latest copy from its watch). Comparing with the
// apiserver's copy, not with what the kubelet last wrote, restores the real
// status after someone else (the node lifecycle controller) changed it.
func (m *statusManager) Set(pod *v1.Pod, st *v1.PodStatus) {
	uid := pod.GetMetadata().GetUid()
	m.mu.Lock()
	if proto.Equal(pod.GetStatus(), st) {
		delete(m.pending, uid)
		m.mu.Unlock()
		return
	}
	m.pending[uid] = statusPod(pod, st)
	m.mu.Unlock()
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// Write writes a status now (used before the final delete, which must
// follow it).
func (m *statusManager) Write(ctx context.Context, pod *v1.Pod, st *v1.PodStatus) error {
	uid := pod.GetMetadata().GetUid()
	m.mu.Lock()
	delete(m.pending, uid)
	m.mu.Unlock()
	_, err := m.c.Pods().UpdateStatus(ctx, statusPod(pod, st))
	return err
}

// Forget drops what is known of a pod.
func (m *statusManager) Forget(uid string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.pending, uid)
}

func (m *statusManager) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.wake:
		}
		m.mu.Lock()
		batch := m.pending
		m.pending = map[string]*v1.Pod{}
		m.mu.Unlock()
		failed := false
		for uid, p := range batch {
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := m.c.Pods().UpdateStatus(wctx, p)
			cancel()
			switch {
			case err == nil:
			case client.IsNotFound(err) || client.IsConflict(err):
				// The pod is gone (or replaced by another with its name).
			default:
				slog.Warn("pod status update failed; will retry", "pod", p.Metadata.Namespace+"/"+p.Metadata.Name, "err", client.Message(err))
				m.mu.Lock()
				if _, newer := m.pending[uid]; !newer {
					m.pending[uid] = p
				}
				m.mu.Unlock()
				failed = true
			}
		}
		if failed {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			select {
			case m.wake <- struct{}{}:
			default:
			}
		}
	}
}
