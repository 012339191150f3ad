// Package client is the typed gRPC client of kubelite's API, with the
// informer (list + watch + local cache) and work queue that the scheduler,
// kubelet and controllers are built from.
package client

import (
	"context"
	"fmt"
	"io"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/kubelite/kubelite/internal/api"
	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

// Client is a connection to one or more apiservers.
type Client struct {
	conn *grpc.ClientConn
	addr string
}

// New connects lazily to the apiserver at addr ("host:port"). Several
// addresses separated by commas are tried in turn (round robin).
func New(addr string, opts ...grpc.DialOption) (*Client, error) {
	if addr == "" {
		return nil, fmt.Errorf("apiserver address is empty")
	}
	target := addr
	if strings.Contains(addr, ",") {
		target = "kubelite:///" + addr
		opts = append(opts, grpc.WithResolvers(staticResolver{}), grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`))
	}
	opts = append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(512 << 20)),
	}, opts...)
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		return nil, fmt.Errorf("apiserver %s: %w", addr, err)
	}
	return &Client{conn: conn, addr: addr}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Addr is the address the client was created with.
func (c *Client) Addr() string { return c.addr }

// Conn is the underlying connection, for generated clients.
func (c *Client) Conn() *grpc.ClientConn { return c.conn }

// Resource is the client of one kind. T is the kind's message type, or
// api.Object for a client chosen at run time (see Dynamic).
type Resource[T api.Object] struct {
	conn *grpc.ClientConn
	kind *api.Kind
}

// For returns the client of the kind whose message type is T.
func For[T api.Object](c *Client) *Resource[T] {
	var zero T
	k := api.KindOf(zero)
	if k == nil {
		panic(fmt.Sprintf("client.For: %T is not a kind", zero))
	}
	return &Resource[T]{conn: c.conn, kind: k}
}

// Dynamic returns the client of a kind chosen at run time.
func Dynamic(c *Client, k *api.Kind) *Resource[api.Object] {
	return &Resource[api.Object]{conn: c.conn, kind: k}
}

// Typed shortcuts.
func (c *Client) Pods() *Resource[*v1.Pod]                 { return For[*v1.Pod](c) }
func (c *Client) Nodes() *Resource[*v1.Node]               { return For[*v1.Node](c) }
func (c *Client) Leases() *Resource[*v1.Lease]             { return For[*v1.Lease](c) }
func (c *Client) Events() *Resource[*v1.Event]             { return For[*v1.Event](c) }
func (c *Client) ReplicaSets() *Resource[*v1.ReplicaSet]   { return For[*v1.ReplicaSet](c) }
func (c *Client) Deployments() *Resource[*v1.Deployment]   { return For[*v1.Deployment](c) }
func (c *Client) StatefulSets() *Resource[*v1.StatefulSet] { return For[*v1.StatefulSet](c) }
func (c *Client) ControllerRevisions() *Resource[*v1.ControllerRevision] {
	return For[*v1.ControllerRevision](c)
}
func (c *Client) PersistentVolumeClaims() *Resource[*v1.PersistentVolumeClaim] {
	return For[*v1.PersistentVolumeClaim](c)
}

// Kind is the kind this client serves.
func (r *Resource[T]) Kind() *api.Kind { return r.kind }

func (r *Resource[T]) call(ctx context.Context, verb string, req proto.Message) (T, error) {
	out := r.kind.NewEmpty()
	if err := r.conn.Invoke(ctx, r.kind.Method(verb), req, out); err != nil {
		var zero T
		return zero, err
	}
	return out.(T), nil
}

// Create stores a new object and returns it as stored.
func (r *Resource[T]) Create(ctx context.Context, o T) (T, error) { return r.call(ctx, "Create", o) }

// Get reads one object; namespace is ignored for cluster-scoped kinds.
func (r *Resource[T]) Get(ctx context.Context, namespace, name string) (T, error) {
	return r.call(ctx, "Get", &v1.GetRequest{Namespace: namespace, Name: name})
}

// Update replaces metadata and spec; a stale resourceVersion fails with Aborted.
func (r *Resource[T]) Update(ctx context.Context, o T) (T, error) { return r.call(ctx, "Update", o) }

// UpdateStatus replaces status only.
func (r *Resource[T]) UpdateStatus(ctx context.Context, o T) (T, error) {
	return r.call(ctx, "UpdateStatus", o)
}

// Delete deletes (or starts graceful deletion of) an object and returns its
// last state; opts may be nil.
func (r *Resource[T]) Delete(ctx context.Context, namespace, name string, opts *v1.DeleteOptions) (T, error) {
	return r.call(ctx, "Delete", &v1.DeleteRequest{Namespace: namespace, Name: name, Options: opts})
}

// List reads the selected objects and the resourceVersion of the read.
func (r *Resource[T]) List(ctx context.Context, req *v1.ListRequest) ([]T, string, error) {
	if req == nil {
		req = &v1.ListRequest{}
	}
	list := r.kind.NewList()
	if err := r.conn.Invoke(ctx, r.kind.Method("List"), req, list); err != nil {
		return nil, "", err
	}
	items := api.ListItems(list)
	out := make([]T, len(items))
	for i, it := range items {
		out[i] = it.(T)
	}
	return out, api.ListRV(list), nil
}

// WatchStream is an open Watch.
type WatchStream[T api.Object] struct {
	stream grpc.ClientStream
	kind   *api.Kind
	cancel context.CancelFunc
}

// Watch opens a watch; Recv returns its events.
func (r *Resource[T]) Watch(ctx context.Context, req *v1.WatchRequest) (*WatchStream[T], error) {
	ctx, cancel := context.WithCancel(ctx)
	desc := &grpc.StreamDesc{StreamName: "Watch", ServerStreams: true}
	s, err := r.conn.NewStream(ctx, desc, r.kind.Method("Watch"))
	if err != nil {
		cancel()
		return nil, err
	}
	if err := s.SendMsg(req); err != nil {
		cancel()
		return nil, err
	}
	if err := s.CloseSend(); err != nil {
		cancel()
		return nil, err
	}
	// The server sends headers once the watch is registered, or fails it.
	md, err := s.Header()
	if err == nil && md == nil {
		// The stream ended before headers: RecvMsg yields its status.
		err = s.RecvMsg(r.kind.NewWatchEvent())
		if err == nil || err == io.EOF {
			err = status.Error(codes.Unavailable, "watch closed by the server before it started")
		}
	}
	if err != nil {
		cancel()
		return nil, err
	}
	return &WatchStream[T]{stream: s, kind: r.kind, cancel: cancel}, nil
}

// Recv returns the next event: its type (ADDED, MODIFIED, DELETED) and object.
func (w *WatchStream[T]) Recv() (string, T, error) {
	ev := w.kind.NewWatchEvent()
	if err := w.stream.RecvMsg(ev); err != nil {
		var zero T
		if err == io.EOF {
			err = status.Error(codes.Unavailable, "watch closed by the server")
		}
		return "", zero, err
	}
	typ, o := api.WatchEventParts(ev)
	if o == nil {
		var zero T
		return typ, zero, nil
	}
	return typ, o.(T), nil
}

// Stop closes the watch.
func (w *WatchStream[T]) Stop() { w.cancel() }

// Bind binds a pod to a node.
func (c *Client) Bind(ctx context.Context, namespace, pod, uid, node string) (*v1.Pod, error) {
	out := &v1.Pod{}
	b := &v1.Binding{
		Metadata: &v1.ObjectMeta{Namespace: namespace, Name: pod, Uid: uid},
		Target:   &v1.ObjectReference{Kind: "Node", Name: node},
	}
	if err := c.conn.Invoke(ctx, api.Kinds[0].Method("Bind"), b, out); err != nil {
		return nil, err
	}
	return out, nil
}

// IsNotFound reports a NotFound error.
func IsNotFound(err error) bool { return status.Code(err) == codes.NotFound }

// IsAlreadyExists reports an AlreadyExists error.
func IsAlreadyExists(err error) bool { return status.Code(err) == codes.AlreadyExists }

// IsConflict reports a stale resourceVersion or failed precondition.
func IsConflict(err error) bool { return status.Code(err) == codes.Aborted }

// IsInvalid reports a validation error.
func IsInvalid(err error) bool { return status.Code(err) == codes.InvalidArgument }

// IsTooOld reports a watch from a compacted or too old resourceVersion:
// the caller must relist.
func IsTooOld(err error) bool { return status.Code(err) == codes.OutOfRange }

// IsUnavailable reports that no apiserver answered.
func IsUnavailable(err error) bool { return status.Code(err) == codes.Unavailable }

// Message is the server's message of a gRPC error, or err's text.
func Message(err error) string {
	if s, ok := status.FromError(err); ok {
		return s.Message()
	}
	return err.Error()
}
