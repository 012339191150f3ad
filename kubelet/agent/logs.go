package agent

import (
	"errors"
	"os"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kubelite/kubelite/kubelet/runtime"
	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

// logServer serves container logs to the apiserver (KubeletService).
type logServer struct {
	v1.UnimplementedKubeletServiceServer
	k *Kubelet
}

// ContainerLogs streams one attempt's log: the current one, or the previous
// with Previous (runtime.ReadLog: CRI entries turned back into text,
// partial lines passed on unbuffered, rotations followed). Output the shim
// could not write (a full disk) ends the stream with DataLoss.
func (s *logServer) ContainerLogs(req *v1.ContainerLogRequest, stream v1.KubeletService_ContainerLogsServer) error {
	at := s.k.rt.Attempts(req.PodUid, req.Container)
	idx := len(at) - 1
	if req.Previous {
		idx--
	}
	if idx < 0 {
		if req.Previous {
			return status.Errorf(codes.InvalidArgument, "previous terminated container %q in pod %s not found", req.Container, req.PodUid)
		}
		return status.Errorf(codes.InvalidArgument, "container %q in pod %s is waiting to start: no log yet", req.Container, req.PodUid)
	}
	if req.TailLines != nil && *req.TailLines < 0 {
		return status.Errorf(codes.InvalidArgument, "tailLines %d: must not be negative", *req.TailLines)
	}
	opt := runtime.LogOptions{Follow: req.Follow, TailLines: req.TailLines, Timestamps: req.Timestamps}
	err := runtime.ReadLog(stream.Context(), at[idx], opt, func(b []byte) error {
		return stream.Send(&v1.LogChunk{Data: b})
	})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, runtime.ErrLogWrite):
		return status.Error(codes.DataLoss, err.Error())
	case errors.Is(err, os.ErrNotExist):
		return status.Error(codes.NotFound, err.Error())
	case status.Code(err) != codes.Unknown:
		return err // the stream's own error
	}
	return status.Error(codes.Internal, err.Error())
}
