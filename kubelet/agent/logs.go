package agent

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

// logServer serves container logs to the apiserver (KubeletService).
type logServer struct {
	v1.UnimplementedKubeletServiceServer
	k *Kubelet
}

// ContainerLogs streams one attempt's log: the current one, or the previous
// with Previous. Lines are stored in the CRI format "<time> <stream> <F|P>
// <text>"; the time prefix is kept only with Timestamps.
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
	c := at[idx]
	f, err := os.Open(c.LogPath)
	if err != nil {
		return status.Errorf(codes.NotFound, "log of container %q: %v", req.Container, err)
	}
	defer f.Close()
	if req.TailLines != nil {
		if err := seekTail(f, *req.TailLines); err != nil {
			return err
		}
	}
	r := bufio.NewReaderSize(f, 64<<10)
	var partial []byte
	send := func(line []byte) error {
		out := formatLine(line, req.Timestamps, &partial)
		if out == nil {
			return nil
		}
		return stream.Send(&v1.LogChunk{Data: out})
	}
	ctx := stream.Context()
	for {
		line, err := r.ReadBytes('\n')
		if err == nil {
			if err := send(line[:len(line)-1]); err != nil {
				return err
			}
			continue
		}
		if err != io.EOF {
			return err
		}
		// At the end of the file: done, unless following a running container.
		_, exited := c.Exited()
		if !req.Follow || (exited && len(line) == 0) {
			if len(line) > 0 {
				return send(line)
			}
			return nil
		}
		if len(line) > 0 { // a line still being written: read it again later
			if _, err := f.Seek(-int64(len(line)), io.SeekCurrent); err != nil {
				return err
			}
			r.Reset(f)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-c.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// formatLine turns one CRI line into output text; partial ("P") lines are
// joined with the rest of their line.
func formatLine(line []byte, timestamps bool, partial *[]byte) []byte {
	f := bytes.SplitN(line, []byte(" "), 4)
	if len(f) < 3 {
		return append(line, '\n')
	}
	text := []byte{}
	if len(f) == 4 {
		text = f[3]
	}
	if string(f[2]) == "P" {
		*partial = append(*partial, text...)
		return nil
	}
	text = append(*partial, text...)
	*partial = nil
	var out []byte
	if timestamps {
		out = append(out, f[0]...)
		out = append(out, ' ')
	}
	out = append(out, text...)
	return append(out, '\n')
}

// seekTail positions f at the start of its last n lines.
func seekTail(f *os.File, n int64) error {
	if n < 0 {
		return status.Errorf(codes.InvalidArgument, "tailLines %d: must not be negative", n)
	}
	st, err := f.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	var lines int64
	buf := make([]byte, 32<<10)
	pos := size
	for pos > 0 {
		chunk := int64(len(buf))
		if pos < chunk {
			chunk = pos
		}
		pos -= chunk
		if _, err := f.ReadAt(buf[:chunk], pos); err != nil && err != io.EOF {
			return err
		}
		for i := chunk - 1; i >= 0; i-- {
			if buf[i] != '\n' || pos+i == size-1 {
				continue
			}
			lines++
			if lines == n {
				_, err := f.Seek(pos+i+1, io.SeekStart)
				return err
			}
		}
	}
	if n == 0 {
		_, err := f.Seek(size, io.SeekStart)
		return err
	}
	_, err = f.Seek(0, io.SeekStart)
	return err
}
