// Package server is the apiserver: etcd (embedded or external), the
// registry, and the gRPC services of every kind.
package server

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
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
	case errors.Is(err, registry.ErrTooOld):
		code = codes.OutOfRange
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
				defer func() {
					if p := recover(); p != nil {
						slog.Error("panic in handler", "method", k.Method(name), "panic", p, "stack", string(debug.Stack()))
						resp, err = nil, status.Errorf(codes.Internal, "internal error in %s", k.Method(name))
					}
				}()
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
func serviceDesc(reg *registry.Registry, kubelets *kubeletDialer, s *registry.Store) *grpc.ServiceDesc {
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
		Handler:       func(_ any, stream grpc.ServerStream) error { return watch(s, stream) },
	}}
	if k.Kind == "Pod" {
		streams = append(streams, grpc.StreamDesc{
			StreamName:    "Logs",
			ServerStreams: true,
			Handler:       func(_ any, stream grpc.ServerStream) error { return podLogs(reg, kubelets, stream) },
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

// watch serves one Watch stream from the store's watch cache.
func watch(s *registry.Store, stream grpc.ServerStream) error {
	k := s.Kind()
	req := &v1.WatchRequest{}
	if err := stream.RecvMsg(req); err != nil {
		return err
	}
	sel, err := api.NewSelector(k, req.Namespace, req.LabelSelector, req.FieldSelector)
	if err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	ctx := stream.Context()
	w, err := s.Watch(ctx, sel, req.ResourceVersion)
	if err != nil {
		return toStatus(err)
	}
	defer w.Stop()
	// Headers go out at once so a client knows the watch is established.
	if err := stream.SendHeader(metadata.Pairs("kubelite-watch", "established")); err != nil {
		return err
	}
	send := func(ev registry.Event) error {
		return stream.SendMsg(api.WatchEvent(k, ev.Type, ev.Object))
	}
	for _, ev := range w.Initial() {
		if err := send(ev); err != nil {
			return err
		}
	}
	// Like the Kubernetes apiserver (--min-request-timeout), end every watch
	// after a random 5 to 10 minutes: clients resume from their last
	// resourceVersion, and no stream stays wedged for ever.
	end := time.NewTimer(5*time.Minute + rand.N(5*time.Minute))
	defer end.Stop()
	for {
		select {
		case <-end.C:
			return nil
		case ev := <-w.Events():
			if err := send(ev); err != nil {
				return err
			}
		case <-w.Done():
			for {
				select {
				case ev := <-w.Events():
					if err := send(ev); err != nil {
						return err
					}
				default:
					return toStatus(w.Err())
				}
			}
		case <-ctx.Done():
			return nil
		}
	}
}
