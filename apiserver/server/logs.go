package server

import (
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/kubelite/kubelite/apiserver/registry"
	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

// kubeletDialer keeps one connection per kubelet address.
type kubeletDialer struct {
	mu    sync.Mutex // guards conns
	conns map[string]*grpc.ClientConn
}

func newKubeletDialer() *kubeletDialer { return &kubeletDialer{conns: map[string]*grpc.ClientConn{}} }

func (d *kubeletDialer) get(addr string) (*grpc.ClientConn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c, ok := d.conns[addr]; ok {
		return c, nil
	}
	c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	d.conns[addr] = c
	return c, nil
}

func (d *kubeletDialer) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.conns {
		_ = c.Close()
	}
}

// podLogs serves PodService.Logs: it finds the pod's node and relays the
// stream of that node's kubelet, so a client needs only the apiserver.
func podLogs(reg *registry.Registry, kubelets *kubeletDialer, stream grpc.ServerStream) error {
	req := &v1.PodLogRequest{}
	if err := stream.RecvMsg(req); err != nil {
		return err
	}
	ctx := stream.Context()
	obj, err := reg.Store("Pod").Get(ctx, req.Namespace, req.Name)
	if err != nil {
		return toStatus(err)
	}
	pod := obj.(*v1.Pod)
	var names []string
	for _, c := range pod.Spec.GetContainers() {
		names = append(names, c.Name)
	}
	container := req.Container
	if container == "" {
		if len(names) != 1 {
			return status.Errorf(codes.InvalidArgument, "a container name must be specified for pod %s, choose one of: [%s]", pod.Metadata.Name, strings.Join(names, " "))
		}
		container = names[0]
	}
	found := false
	for _, n := range names {
		found = found || n == container
	}
	if !found {
		return status.Errorf(codes.InvalidArgument, "container %s is not valid for pod %s", container, pod.Metadata.Name)
	}
	if pod.Spec.GetNodeName() == "" {
		return status.Errorf(codes.FailedPrecondition, "container %q in pod %q is waiting to start: the pod is not scheduled to a node yet", container, pod.Metadata.Name)
	}
	nobj, err := reg.Store("Node").Get(ctx, "", pod.Spec.NodeName)
	if err != nil {
		return toStatus(err)
	}
	node := nobj.(*v1.Node)
	addr, err := kubeletAddress(node)
	if err != nil {
		return status.Error(codes.Unavailable, err.Error())
	}
	conn, err := kubelets.get(addr)
	if err != nil {
		return status.Error(codes.Unavailable, err.Error())
	}
	ks, err := v1.NewKubeletServiceClient(conn).ContainerLogs(ctx, &v1.ContainerLogRequest{
		PodUid: pod.Metadata.Uid, Container: container, Follow: req.Follow, Previous: req.Previous,
		TailLines: req.TailLines, Timestamps: req.Timestamps,
	})
	if err != nil {
		return err
	}
	for {
		chunk, err := ks.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if status.Code(err) == codes.Unavailable {
				return status.Errorf(codes.Unavailable, "kubelet of node %s at %s: %v", node.Metadata.Name, addr, status.Convert(err).Message())
			}
			return err
		}
		if err := stream.SendMsg(chunk); err != nil {
			return err
		}
	}
}

func kubeletAddress(n *v1.Node) (string, error) {
	port := n.GetStatus().GetDaemonEndpoints().GetKubeletEndpoint().GetPort()
	if port == 0 {
		return "", fmt.Errorf("node %s reports no kubelet endpoint", n.Metadata.Name)
	}
	for _, a := range n.GetStatus().GetAddresses() {
		if a.Type == "InternalIP" {
			return net.JoinHostPort(a.Address, strconv.Itoa(int(port))), nil
		}
	}
	return "", fmt.Errorf("node %s reports no InternalIP address", n.Metadata.Name)
}
