// Package server is the apiserver: etcd (embedded or external), the
// registry, and the gRPC services of every kind.
package server

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/kubelite/kubelite/apiserver/registry"
	"github.com/kubelite/kubelite/internal/api"
	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

// toStatus converts a storage error to a gRPC status, once, at the boundary.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	err = registry.FromEtcd(err)
	if _, ok := status.FromError(err); ok {
		return err
	}
	code := codes.Unavailable
	switch {
	case errors.Is(err, registry.ErrNotFound):
		code = codes.NotFound
	case errors.Is(err, registry.ErrAlreadyExists):
		code = codes.AlreadyExists
	case errors.Is(err, registry.ErrConflict):
		code = codes.Aborted
	case errors.Is(err, registry.ErrInvalid), errors.Is(err, registry.ErrBadRequest):
		code = codes.InvalidArgument
	case errors.Is(err, registry.ErrTooOld), errors.Is(err, registry.ErrTooLarge):
		// Both make the client relist (Kubernetes: 410 Expired and 504
		// ResourceVersionTooLarge).
		code = codes.OutOfRange
	case errors.Is(err, registry.ErrNoSpace):
		code = codes.ResourceExhausted
	case errors.Is(err, registry.ErrCorrupt):
		code = codes.Internal
	case errors.Is(err, registry.ErrGone):
		code = codes.Unavailable
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	}
	return status.Error(code, err.Error())
}

// unaryMethod adapts one typed call to grpc's generic method handler.
func unaryMethod[Req proto.Message](k *api.Kind, name string, newReq func() Req, call func(context.Context, Req) (proto.Message, error)) grpc.MethodDesc {
	return grpc.MethodDesc{
		MethodName: name,
		Handler: func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
			req := newReq()
			if err := dec(req); err != nil {
				return nil, err
			}
			h := func(ctx context.Context, r any) (resp any, err error) {
				resp, err = call(ctx, r.(Req))
				if err != nil {
					return nil, toStatus(err)
				}
				return resp, nil
			}
			if interceptor == nil {
				return h(ctx, req)
			}
			return interceptor(ctx, req, &grpc.UnaryServerInfo{Server: srv, FullMethod: k.Method(name)}, h)
		},
	}
}

// serviceDesc builds the gRPC service of one kind over its store. The
// method names and message types are those of proto/kubelite/v1/services.proto,
// so the generated clients, grpcurl and reflection all see the same service.
func serviceDesc(reg *registry.Registry, kubelets *kubeletDialer, limits *watchLimits, s *registry.Store) *grpc.ServiceDesc {
	k := s.Kind()
	newObj := func() api.Object { return k.NewEmpty() }
	methods := []grpc.MethodDesc{
		unaryMethod(k, "Create", newObj, func(ctx context.Context, o api.Object) (proto.Message, error) {
			return s.Create(ctx, o)
		}),
		unaryMethod(k, "Get", func() *v1.GetRequest { return &v1.GetRequest{} }, func(ctx context.Context, r *v1.GetRequest) (proto.Message, error) {
			return s.Get(ctx, r.Namespace, r.Name)
		}),
		unaryMethod(k, "List", func() *v1.ListRequest { return &v1.ListRequest{} }, func(ctx context.Context, r *v1.ListRequest) (proto.Message, error) {
			sel, err := api.NewSelector(k, r.Namespace, r.LabelSelector, r.FieldSelector)
			if err != nil {
				return nil, status.Error(codes.InvalidArgument, err.Error())
			}
			items, rev, err := s.List(ctx, sel)
			if err != nil {
				return nil, err
			}
			list := k.NewList()
			api.SetListItems(list, k, items, strconv.FormatInt(rev, 10))
			return list, nil
		}),
		unaryMethod(k, "Update", newObj, func(ctx context.Context, o api.Object) (proto.Message, error) {
			return s.Update(ctx, o, false)
		}),
		unaryMethod(k, "UpdateStatus", newObj, func(ctx context.Context, o api.Object) (proto.Message, error) {
			if !k.HasStatus {
				return nil, status.Errorf(codes.Unimplemented, "%s have no status", k.Resource)
			}
			return s.Update(ctx, o, true)
		}),
		unaryMethod(k, "Delete", func() *v1.DeleteRequest { return &v1.DeleteRequest{} }, func(ctx context.Context, r *v1.DeleteRequest) (proto.Message, error) {
			return s.Delete(ctx, r.Namespace, r.Name, r.Options)
		}),
	}
	if k.Kind == "Pod" {
		methods = append(methods, unaryMethod(k, "Bind", func() *v1.Binding { return &v1.Binding{} }, func(ctx context.Context, b *v1.Binding) (proto.Message, error) {
			return s.Bind(ctx, b)
		}))
	}
	streams := []grpc.StreamDesc{{
		StreamName:    "Watch",
		ServerStreams: true,
		Handler:       func(_ any, stream grpc.ServerStream) error { return watch(s, limits, stream) },
	}}
	if k.Kind == "Pod" {
		streams = append(streams, grpc.StreamDesc{
			StreamName:    "Logs",
			ServerStreams: true,
			Handler: func(_ any, stream grpc.ServerStream) error {
				// A log stream is as long-lived as a watch: it counts against
				// the same caps.
				release, err := limits.acquire(stream.Context())
				if err != nil {
					return err
				}
				defer release()
				return podLogs(reg, kubelets, stream)
			},
		})
	}
	return &grpc.ServiceDesc{
		ServiceName: k.ServiceName(),
		HandlerType: (*any)(nil),
		Methods:     methods,
		Streams:     streams,
		Metadata:    "kubelite/v1/services.proto",
	}
}

// watchHook, when set (tests only), runs at the start of every Watch.
var watchHook atomic.Pointer[func(resource string)]

// sendHook, when set (tests only), runs before each watch event is sent.
var sendHook atomic.Pointer[func(resource string)]

// watch serves one Watch stream from the store's watch cache.
func watch(s *registry.Store, limits *watchLimits, stream grpc.ServerStream) error {
	k := s.Kind()
	ctx := stream.Context()
	// Counted before the request is read: a client that opens streams and
	// never sends their request holds them too.
	release, err := limits.acquire(ctx)
	if err != nil {
		return err
	}
	defer release()
	req := &v1.WatchRequest{}
	if err := stream.RecvMsg(req); err != nil {
		return err
	}
	if hook := watchHook.Load(); hook != nil {
		(*hook)(k.Resource)
	}
	sel, err := api.NewSelector(k, req.Namespace, req.LabelSelector, req.FieldSelector)
	if err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	w, err := s.Watch(ctx, sel, req.ResourceVersion)
	if err != nil {
		return toStatus(err)
	}
	defer w.Stop()
	// Headers go out at once so a client knows the watch is established.
	if err := stream.SendHeader(metadata.Pairs("kubelite-watch", "established")); err != nil {
		return err
	}
	// Events are sent from their own goroutine: a client that stops reading
	// blocks SendMsg on flow control, and the handler must still end the
	// stream when the watch's time is up or the watcher stops (grpc then
	// cancels the stream, which unblocks the sender).
	quit := make(chan struct{})
	sent := make(chan error, 1)
	go func() { sent <- sendEventsRecovered(stream, k, w, quit) }()
	// Like the Kubernetes apiserver (--min-request-timeout), end every watch
	// after a random one to two timeouts: clients resume from their last
	// resourceVersion, and no stream stays wedged for ever.
	end := time.NewTimer(limits.timeout + rand.N(limits.timeout))
	defer end.Stop()
	defer close(quit)
	select {
	case <-end.C:
		return nil
	case err := <-sent:
		return err
	case <-ctx.Done():
		return nil
	}
}

// sendEventsRecovered is sendEvents in its own goroutine, where the stream
// interceptor's recover does not reach: a panic ends this stream with
// Internal, logged with its stack, and every other stream carries on.
func sendEventsRecovered(stream grpc.ServerStream, k *api.Kind, w *registry.Watcher, quit <-chan struct{}) (err error) {
	defer recoverTo(&err, "the "+k.Resource+" watch")
	return sendEvents(stream, k, w, quit)
}

// sendEvents sends a watcher's initial and queued events until it stops
// (its error ends the stream), sending fails, or quit is closed.
func sendEvents(stream grpc.ServerStream, k *api.Kind, w *registry.Watcher, quit <-chan struct{}) error {
	send := func(evs []registry.Event) error {
		for _, ev := range evs {
			select {
			case <-quit:
				return nil
			default:
			}
			if hook := sendHook.Load(); hook != nil {
				(*hook)(k.Resource)
			}
			if err := stream.SendMsg(api.WatchEvent(k, ev.Type, ev.Object)); err != nil {
				return err
			}
		}
		return nil
	}
	if err := send(w.Initial()); err != nil {
		return err
	}
	for {
		select {
		case <-quit:
			return nil
		case <-w.Ready():
			if err := send(w.Take()); err != nil {
				return err
			}
		case <-w.Done():
			if err := send(w.Take()); err != nil {
				return err
			}
			return toStatus(w.Err())
		}
	}
}

// watchLimits caps open long-running streams (Watch and Logs), server-wide
// and per client, so that no client can exhaust the apiserver's memory with
// them. A client is a
// host (its IP address, every connection from it together): kubelite has no
// per-request identity yet.
type watchLimits struct {
	max, perClient int
	timeout        time.Duration // --min-request-timeout

	mu       sync.Mutex // guards total and byClient
	total    int
	byClient map[string]int
	open     prometheus.Gauge // the streams holding a slot
}

func newWatchLimits(max, perClient int, timeout time.Duration) *watchLimits {
	return &watchLimits{max: max, perClient: perClient, timeout: timeout, byClient: map[string]int{},
		open: prometheus.NewGauge(prometheus.GaugeOpts{Name: "apiserver_long_running_streams", Help: "Open Watch and Logs streams counted against the watch caps."})}
}

// clientHost names the calling client for the per-client cap: its host (IP
// address), not its connection, since a client that opens more connections
// must not get more watches. Clients behind one NAT or proxy share a cap.
func clientHost(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return "unknown"
	}
	if host, _, err := net.SplitHostPort(p.Addr.String()); err == nil {
		return host
	}
	return p.Addr.String()
}

// acquire counts one more watch of the calling client, or refuses it with
// ResourceExhausted naming the limit; release gives it back.
func (l *watchLimits) acquire(ctx context.Context) (release func(), err error) {
	client := clientHost(ctx)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.max > 0 && l.total >= l.max {
		return nil, status.Errorf(codes.ResourceExhausted, "too many watches: the apiserver serves at most %d watch and log streams (--max-watches); retry later", l.max)
	}
	if l.perClient > 0 && l.byClient[client] >= l.perClient {
		return nil, status.Errorf(codes.ResourceExhausted, "too many watches from client %s: at most %d per client, watch and log streams together (--max-watches-per-client)", client, l.perClient)
	}
	l.total++
	l.byClient[client]++
	l.open.Inc()
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.total--
			l.open.Dec()
			if l.byClient[client]--; l.byClient[client] == 0 {
				delete(l.byClient, client)
			}
		})
	}, nil
}

// recoverUnary turns a panic in a handler into an Internal error, logged
// with its stack, instead of a crashed apiserver.
func recoverUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
	// A panicking handler returns nothing: resp stays nil.
	defer recoverTo(&err, info.FullMethod)
	return h(ctx, req)
}

// recoverStream does the same for streams (Watch, Logs): the stream ends
// with Internal and every other stream carries on.
func recoverStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) (err error) {
	defer recoverTo(&err, info.FullMethod)
	return h(srv, ss)
}

// recoverTo, deferred, turns a panic into an Internal error for what (a
// method, a watch), logged with its stack.
func recoverTo(err *error, what string) {
	if p := recover(); p != nil {
		slog.Error("panic in handler", "in", what, "panic", p, "stack", string(debug.Stack()))
		*err = status.Errorf(codes.Internal, "internal error in %s", what)
	}
}
