// Package cmd holds etcdctl-lite's commands.
package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/kubelite/kubelite/internal/api"
	"github.com/kubelite/kubelite/internal/cliconfig"
	"github.com/kubelite/kubelite/internal/cmdutil"
)

type globals struct {
	endpoints   []string
	timeout     time.Duration
	out, errOut io.Writer
	from        string
}

type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// Execute runs etcdctl-lite and returns its exit code.
func Execute(args []string, out, errOut io.Writer) int {
	g := &globals{out: out, errOut: errOut}
	root := &cobra.Command{
		Use:           "etcdctl-lite",
		Short:         "etcdctl-lite reads the keys kubelite keeps in etcd and decodes them",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetArgs(args)
	root.SetOut(out)
	root.SetErr(errOut)
	root.PersistentFlags().StringSliceVar(&g.endpoints, "endpoints", nil, "etcd client endpoints (else $ETCDCTL_ENDPOINTS, else the kubelite config file, else 127.0.0.1:2379)")
	root.PersistentFlags().DurationVar(&g.timeout, "command-timeout", 10*time.Second, "timeout of one request")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return &usageError{err.Error()} })
	root.AddCommand(newGetCommand(g), newWatchCommand(g), newDelCommand(g), newEndpointCommand(g), newMemberCommand(g), newCompactionCommand(g))
	err := root.Execute()
	if err == nil {
		return cmdutil.ExitOK
	}
	fmt.Fprintln(errOut, "Error:", err)
	var ue *usageError
	if errors.As(err, &ue) || strings.HasPrefix(err.Error(), "unknown command") || strings.Contains(err.Error(), "arg(s)") {
		return cmdutil.ExitUsage
	}
	return cmdutil.ExitFailure
}

func (g *globals) client() (*clientv3.Client, error) {
	eps, from := g.endpoints, "--endpoints"
	if len(eps) == 0 {
		if v := os.Getenv(cliconfig.EnvEtcd); v != "" {
			eps, from = strings.Split(v, ","), "$"+cliconfig.EnvEtcd
		} else if f, ok, err := cliconfig.Load(); err != nil {
			return nil, err
		} else if ok && len(f.EtcdEndpoints) > 0 {
			eps, from = f.EtcdEndpoints, "config file "+cliconfig.Path()
		} else {
			eps, from = []string{"127.0.0.1:2379"}, "the default"
		}
	}
	g.from = from
	c, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 3 * time.Second, Logger: zap.NewNop(), MaxCallRecvMsgSize: 512 << 20})
	if err != nil {
		return nil, fmt.Errorf("etcd at %v (from %s): %w", eps, from, err)
	}
	return c, nil
}

// withClient runs f with a client to the chosen endpoints, closed after.
func (g *globals) withClient(f func(c *clientv3.Client) error) error {
	c, err := g.client()
	if err != nil {
		return err
	}
	defer c.Close()
	return f(c)
}

func (g *globals) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), g.timeout)
}

func (g *globals) wrap(c *clientv3.Client, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("etcd at %v (from %s): %w", c.Endpoints(), g.from, err)
}

// printValue writes one key and its decoded value in the chosen format.
func printValue(w io.Writer, format string, key, value []byte, modRev int64) error {
	switch format {
	case "raw":
		fmt.Fprintf(w, "%s\n%s\n", key, value)
		return nil
	case "keys":
		fmt.Fprintf(w, "%s\n", key)
		return nil
	}
	if !api.IsEncoded(value) {
		fmt.Fprintf(w, "%s\n%s\n", key, value)
		return nil
	}
	o, err := api.Decode(value)
	if err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	api.EnsureMeta(o).ResourceVersion = strconv.FormatInt(modRev, 10)
	switch format {
	case "json":
		b, err := api.MarshalJSON(o)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "%s\n%s\n", key, b)
	default:
		b, err := api.MarshalYAML(o)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "# %s\n%s", key, b)
	}
	return nil
}

func checkFormat(f string) error {
	switch f {
	case "yaml", "json", "raw":
		return nil
	}
	return &usageError{fmt.Sprintf("--output %q: expected yaml, json or raw", f)}
}

func newGetCommand(g *globals) *cobra.Command {
	var prefix, keysOnly bool
	var output string
	var limit int64
	c := &cobra.Command{
		Use:   "get KEY",
		Short: "Print keys and their decoded values",
		Example: `  etcdctl-lite get --prefix /registry/pods
  etcdctl-lite get /registry/pods/default/web -o json
  etcdctl-lite get --prefix --keys-only /registry`,
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			if err := checkFormat(output); err != nil {
				return err
			}
			return g.withClient(func(c *clientv3.Client) error {
				ctx, cancel := g.ctx()
				defer cancel()
				opts := []clientv3.OpOption{clientv3.WithLimit(limit)}
				if prefix {
					opts = append(opts, clientv3.WithPrefix())
				}
				if keysOnly {
					opts = append(opts, clientv3.WithKeysOnly())
					output = "keys"
				}
				resp, err := c.Get(ctx, args[0], opts...)
				if err != nil {
					return g.wrap(c, err)
				}
				for _, kv := range resp.Kvs {
					if err := printValue(g.out, output, kv.Key, kv.Value, kv.ModRevision); err != nil {
						return err
					}
				}
				return nil
			})
		},
	}
	c.Flags().BoolVar(&prefix, "prefix", false, "get every key with this prefix")
	c.Flags().BoolVar(&keysOnly, "keys-only", false, "print only the keys")
	c.Flags().StringVarP(&output, "output", "o", "yaml", "value format: yaml, json or raw (the stored bytes)")
	c.Flags().Int64Var(&limit, "limit", 0, "at most this many keys (0: all)")
	return c
}

func newWatchCommand(g *globals) *cobra.Command {
	var prefix bool
	var output string
	var rev int64
	c := &cobra.Command{
		Use:   "watch KEY",
		Short: "Print changes to a key or prefix until interrupted",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			if err := checkFormat(output); err != nil {
				return err
			}
			return g.withClient(func(c *clientv3.Client) error {
				ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
				defer stop()
				opts := []clientv3.OpOption{}
				if prefix {
					opts = append(opts, clientv3.WithPrefix())
				}
				if rev > 0 {
					opts = append(opts, clientv3.WithRev(rev))
				}
				for wr := range c.Watch(clientv3.WithRequireLeader(ctx), args[0], opts...) {
					if err := wr.Err(); err != nil {
						return g.wrap(c, err)
					}
					for _, ev := range wr.Events {
						fmt.Fprintln(g.out, ev.Type.String())
						if ev.Type == clientv3.EventTypeDelete {
							fmt.Fprintf(g.out, "%s\n", ev.Kv.Key)
							continue
						}
						if err := printValue(g.out, output, ev.Kv.Key, ev.Kv.Value, ev.Kv.ModRevision); err != nil {
							return err
						}
					}
				}
				return nil
			})
		},
	}
	c.Flags().BoolVar(&prefix, "prefix", false, "watch every key with this prefix")
	c.Flags().StringVarP(&output, "output", "o", "yaml", "value format: yaml, json or raw")
	c.Flags().Int64Var(&rev, "rev", 0, "start from this revision")
	return c
}

func newDelCommand(g *globals) *cobra.Command {
	var prefix bool
	c := &cobra.Command{
		Use:   "del KEY",
		Short: "Delete keys (bypasses the apiserver: no graceful deletion, no finalizers)",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			return g.withClient(func(c *clientv3.Client) error {
				ctx, cancel := g.ctx()
				defer cancel()
				opts := []clientv3.OpOption{}
				if prefix {
					opts = append(opts, clientv3.WithPrefix())
				}
				resp, err := c.Delete(ctx, args[0], opts...)
				if err != nil {
					return g.wrap(c, err)
				}
				fmt.Fprintln(g.out, resp.Deleted)
				return nil
			})
		},
	}
	c.Flags().BoolVar(&prefix, "prefix", false, "delete every key with this prefix")
	return c
}

func newEndpointCommand(g *globals) *cobra.Command {
	ep := &cobra.Command{Use: "endpoint", Short: "Endpoint commands"}
	ep.AddCommand(&cobra.Command{
		Use:   "status",
		Short: "Print each endpoint's version, db size, leader and revision",
		Args:  cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			return g.withClient(func(c *clientv3.Client) error {
				w := tabwriter.NewWriter(g.out, 0, 8, 2, ' ', 0)
				fmt.Fprintln(w, "ENDPOINT\tID\tVERSION\tDB SIZE\tIS LEADER\tRAFT TERM\tRAFT INDEX\tREVISION")
				for _, e := range c.Endpoints() {
					ctx, cancel := g.ctx()
					s, err := c.Status(ctx, e)
					cancel()
					if err != nil {
						return g.wrap(c, err)
					}
					fmt.Fprintf(w, "%s\t%x\t%s\t%d\t%v\t%d\t%d\t%d\n", e, s.Header.MemberId, s.Version, s.DbSize, s.Leader == s.Header.MemberId, s.RaftTerm, s.RaftIndex, s.Header.Revision)
				}
				return w.Flush()
			})
		},
	})
	return ep
}

func newMemberCommand(g *globals) *cobra.Command {
	m := &cobra.Command{Use: "member", Short: "Membership commands"}
	m.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List the cluster's members",
		Args:  cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			return g.withClient(func(c *clientv3.Client) error {
				ctx, cancel := g.ctx()
				defer cancel()
				resp, err := c.MemberList(ctx)
				if err != nil {
					return g.wrap(c, err)
				}
				w := tabwriter.NewWriter(g.out, 0, 8, 2, ' ', 0)
				fmt.Fprintln(w, "ID\tSTATUS\tNAME\tPEER ADDRS\tCLIENT ADDRS\tIS LEARNER")
				for _, mem := range resp.Members {
					st := "started"
					if mem.Name == "" {
						st = "unstarted"
					}
					fmt.Fprintf(w, "%x\t%s\t%s\t%s\t%s\t%v\n", mem.ID, st, mem.Name, strings.Join(mem.PeerURLs, ","), strings.Join(mem.ClientURLs, ","), mem.IsLearner)
				}
				return w.Flush()
			})
		},
	})
	return m
}

func newCompactionCommand(g *globals) *cobra.Command {
	var physical bool
	c := &cobra.Command{
		Use:   "compaction REVISION",
		Short: "Discard history before REVISION (watches from older revisions then fail)",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			rev, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil || rev <= 0 {
				return &usageError{fmt.Sprintf("REVISION %q: expected a positive revision number", args[0])}
			}
			return g.withClient(func(c *clientv3.Client) error {
				ctx, cancel := g.ctx()
				defer cancel()
				opts := []clientv3.CompactOption{}
				if physical {
					opts = append(opts, clientv3.WithCompactPhysical())
				}
				if _, err := c.Compact(ctx, rev, opts...); err != nil {
					return g.wrap(c, err)
				}
				fmt.Fprintf(g.out, "compacted revision %d\n", rev)
				return nil
			})
		},
	}
	c.Flags().BoolVar(&physical, "physical", false, "wait until the compaction is physically applied")
	return c
}
