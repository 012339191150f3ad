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
//
// Every Set, Write and Forget bumps the pod's generation. A batch write
// that fails is queued again only if the generation is still the one it
// was queued with, and one that was superseded while it waited is not sent:
// a Running status from before an apiserver outage never lands after the
// terminal status the final delete wrote, nor after Forget.
type statusManager struct {
	c    *client.Client
	wake chan struct{}

	// writeMu orders the writes themselves: a batch write already on the
	// wire finishes before Write sends, so Write's status lands last.
	writeMu sync.Mutex

	mu      sync.Mutex               // guards pending, gen, seq
	pending map[string]pendingStatus // uid -> status to write
	gen     map[string]uint64        // uid -> generation of its last Set/Write
	seq     uint64                   // last generation handed out
}

type pendingStatus struct {
	pod *v1.Pod // carries the status
	gen uint64
}

func newStatusManager(c *client.Client) *statusManager {
	return &statusManager{c: c, wake: make(chan struct{}, 1), pending: map[string]pendingStatus{}, gen: map[string]uint64{}}
}

// statusPod is the minimal pod an UpdateStatus needs: identity (the uid is
// a precondition) and status.
func statusPod(pod *v1.Pod, st *v1.PodStatus) *v1.Pod {
	m := pod.GetMetadata()
	return &v1.Pod{Metadata: &v1.ObjectMeta{Name: m.Name, Namespace: m.Namespace, Uid: m.Uid}, Status: st}
}

// bump gives the pod a new generation; m.mu must be held.
func (m *statusManager) bump(uid string) uint64 {
	m.seq++
	m.gen[uid] = m.seq
	return m.seq
}

// current reports whether g is still the pod's generation; m.mu must be held.
func (m *statusManager) current(uid string, g uint64) bool {
	cur, ok := m.gen[uid]
	return ok && cur == g
}

// Set queues a status for the pod unless the apiserver already has it
// (pod is the kubelet's latest copy from its watch). Comparing with the
// apiserver's copy, not with what the kubelet last wrote, restores the real
// status after someone else (the node lifecycle controller) changed it.
func (m *statusManager) Set(pod *v1.Pod, st *v1.PodStatus) {
	uid := pod.GetMetadata().GetUid()
	m.mu.Lock()
	g := m.bump(uid)
	if proto.Equal(pod.GetStatus(), st) {
		delete(m.pending, uid)
		m.mu.Unlock()
		return
	}
	m.pending[uid] = pendingStatus{pod: statusPod(pod, st), gen: g}
	m.mu.Unlock()
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// Write writes a status now (used before the final delete, which must
// follow it). It supersedes whatever is queued or being retried.
func (m *statusManager) Write(ctx context.Context, pod *v1.Pod, st *v1.PodStatus) error {
	uid := pod.GetMetadata().GetUid()
	m.mu.Lock()
	m.bump(uid)
	delete(m.pending, uid)
	m.mu.Unlock()
	m.writeMu.Lock()
	defer m.writeMu.Unlock()
	_, err := m.c.Pods().UpdateStatus(ctx, statusPod(pod, st))
	return err
}

// Forget drops what is known of a pod; nothing queued or failing before
// is written after it.
func (m *statusManager) Forget(uid string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.pending, uid)
	delete(m.gen, uid)
}

// writeQueued sends one queued status unless it was superseded, and
// reports whether it failed in a way worth retrying.
func (m *statusManager) writeQueued(ctx context.Context, uid string, ps pendingStatus) (retry bool) {
	m.writeMu.Lock()
	defer m.writeMu.Unlock()
	m.mu.Lock()
	stale := !m.current(uid, ps.gen)
	m.mu.Unlock()
	if stale {
		return false
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_, err := m.c.Pods().UpdateStatus(wctx, ps.pod)
	cancel()
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case err == nil, client.IsNotFound(err) || client.IsConflict(err):
		// Written, or the pod is gone (or replaced by another with its
		// name). Nothing more to order against: drop the generation.
		if m.current(uid, ps.gen) {
			delete(m.gen, uid)
		}
		return false
	default:
		p := ps.pod
		if !m.current(uid, ps.gen) {
			slog.Debug("pod status update failed; superseded, not retried", "pod", p.Metadata.Namespace+"/"+p.Metadata.Name, "err", client.Message(err))
			return false
		}
		slog.Warn("pod status update failed; will retry", "pod", p.Metadata.Namespace+"/"+p.Metadata.Name, "err", client.Message(err))
		m.pending[uid] = ps
		return true
	}
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
		m.pending = map[string]pendingStatus{}
		m.mu.Unlock()
		failed := false
		for uid, ps := range batch {
			if m.writeQueued(ctx, uid, ps) {
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
