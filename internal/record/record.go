// Package record writes Events about objects, as client-go's event recorder
// does: asynchronously (a full queue drops events rather than block the
// caller), and aggregating repeats of the same event into one with a count.
package record

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kubelite/kubelite/internal/api"
	"github.com/kubelite/kubelite/internal/client"
	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

// Event types.
const (
	Normal  = "Normal"
	Warning = "Warning"
)

// Recorder records events for one component.
type Recorder struct {
	c         *client.Client
	component string
	host      string
	queue     chan *v1.Event

	mu   sync.Mutex // guards seen
	seen map[string]*v1.Event

	dropped     atomic.Int64
	lastDropLog atomic.Int64 // unix nanos
}

// New returns a recorder; Run must run for events to be written.
func New(c *client.Client, component, host string) *Recorder {
	return &Recorder{c: c, component: component, host: host, queue: make(chan *v1.Event, 1000), seen: map[string]*v1.Event{}}
}

// Eventf records an event about obj.
func (r *Recorder) Eventf(obj api.Object, typ, reason, format string, args ...any) {
	if r == nil {
		return
	}
	m := obj.GetMetadata()
	k := api.KindOf(obj)
	now := timestamppb.Now()
	ns := m.GetNamespace()
	if ns == "" {
		ns = api.DefaultNamespace
	}
	ev := &v1.Event{
		Metadata: &v1.ObjectMeta{Name: fmt.Sprintf("%s.%x", m.GetName(), time.Now().UnixNano()), Namespace: ns},
		InvolvedObject: &v1.ObjectReference{Kind: k.Kind, ApiVersion: k.APIVersion, Namespace: m.GetNamespace(), Name: m.GetName(),
			Uid: m.GetUid(), ResourceVersion: m.GetResourceVersion()},
		Reason: reason, Message: fmt.Sprintf(format, args...), Type: typ,
		Source:         &v1.EventSource{Component: r.component, Host: r.host},
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
		ReportingComponent: r.component, ReportingInstance: r.host,
	}
	select {
	case r.queue <- ev:
	default:
		// Under a burst events are dropped, as client-go's broadcaster does;
		// say so at most every 10 s.
		n := r.dropped.Add(1)
		if now := time.Now().UnixNano(); now-r.lastDropLog.Load() > int64(10*time.Second) {
			r.lastDropLog.Store(now)
			slog.Warn("events dropped: the event queue is full", "dropped_so_far", n, "component", r.component)
		}
	}
}

// Run writes queued events until ctx ends.
func (r *Recorder) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-r.queue:
			r.write(ctx, ev)
		}
	}
}

// aggregationWindow is how long a repeated event updates the earlier one.
const aggregationWindow = 10 * time.Minute

func (r *Recorder) write(ctx context.Context, ev *v1.Event) {
	io := ev.InvolvedObject
	key := strings.Join([]string{io.Namespace, io.Kind, io.Name, io.Uid, ev.Type, ev.Reason, ev.Message}, "\x00")
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	events := r.c.Events()
	r.mu.Lock()
	prev := r.seen[key]
	r.mu.Unlock()
	if prev != nil && time.Since(prev.LastTimestamp.AsTime()) < aggregationWindow {
		upd := proto.Clone(prev).(*v1.Event)
		upd.Count++
		upd.LastTimestamp = ev.LastTimestamp
		upd.Metadata.ResourceVersion = ""
		if out, err := events.Update(ctx, upd); err == nil {
			r.remember(key, out)
			return
		}
	}
	out, err := events.Create(ctx, ev)
	if err != nil {
		slog.Warn("cannot write event", "reason", ev.Reason, "object", io.Name, "err", client.Message(err))
		return
	}
	r.remember(key, out)
}

func (r *Recorder) remember(key string, ev *v1.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.seen) > 4096 {
		for k, e := range r.seen {
			if time.Since(e.LastTimestamp.AsTime()) > aggregationWindow {
				delete(r.seen, k)
			}
		}
	}
	r.seen[key] = ev
}
