package cmd

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

type logsOptions struct {
	container  string
	follow     bool
	previous   bool
	tail       int64
	timestamps bool
}

func newLogsCommand(g *globals) *cobra.Command {
	o := &logsOptions{}
	c := &cobra.Command{
		Use:   "logs POD [-c CONTAINER]",
		Short: "Print a container's log (served by its node's kubelet, through the apiserver)",
		Example: `  kubectl-lite logs web
  kubectl-lite logs web -c main -f
  kubectl-lite logs web --previous --tail 20 --timestamps`,
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error { return runLogs(g, o, args[0]) },
	}
	f := c.Flags()
	f.StringVarP(&o.container, "container", "c", "", "the container (needed when the pod has several)")
	f.BoolVarP(&o.follow, "follow", "f", false, "keep streaming as the container writes")
	f.BoolVarP(&o.previous, "previous", "p", false, "the log of the container's previous start")
	f.Int64Var(&o.tail, "tail", -1, "only the last N lines (-1: all)")
	f.BoolVar(&o.timestamps, "timestamps", false, "prefix each line with its RFC 3339 time")
	return c
}

func runLogs(g *globals, o *logsOptions, pod string) error {
	c, err := g.client()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if !o.follow {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, g.timeout)
		defer cancel()
	}
	req := &v1.PodLogRequest{Namespace: g.ns(), Name: pod, Container: o.container, Follow: o.follow, Previous: o.previous, Timestamps: o.timestamps}
	if o.tail >= 0 {
		req.TailLines = &o.tail
	}
	s, err := v1.NewPodServiceClient(c.Conn()).Logs(ctx, req)
	if err != nil {
		return err
	}
	for {
		chunk, err := s.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if ctx.Err() != nil && o.follow {
				return nil
			}
			return err
		}
		if _, err := g.out.Write(chunk.Data); err != nil {
			return err
		}
	}
}
