// Package cmd holds kubectl-lite's commands, one file per verb.
package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kubelite/kubelite/internal/api"
	"github.com/kubelite/kubelite/internal/cliconfig"
	"github.com/kubelite/kubelite/internal/client"
	"github.com/kubelite/kubelite/internal/cmdutil"
)

// globals are the flags every command has.
type globals struct {
	server        string
	namespace     string
	allNamespaces bool
	timeout       time.Duration
	in            io.Reader
	out, errOut   io.Writer

	conn       *client.Client
	serverFrom string
}

// usageError marks bad arguments (exit code 2, not 1).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// Execute runs kubectl-lite and returns its exit code.
func Execute(args []string, in io.Reader, out, errOut io.Writer) int {
	g := &globals{in: in, out: out, errOut: errOut}
	root := &cobra.Command{
		Use:           "kubectl-lite",
		Short:         "kubectl-lite controls a kubelite cluster",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetArgs(args)
	root.SetIn(in)
	root.SetOut(out)
	root.SetErr(errOut)
	pf := root.PersistentFlags()
	pf.StringVar(&g.server, "server", "", "apiserver address host:port (else $KUBELITE_SERVER, else the config file)")
	pf.StringVarP(&g.namespace, "namespace", "n", "", "the namespace (default \"default\")")
	pf.DurationVar(&g.timeout, "request-timeout", 30*time.Second, "how long one request may take")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &usageError{msg: err.Error() + "\nSee '" + c.CommandPath() + " --help' for usage."}
	})
	root.AddCommand(
		newApplyCommand(g), newCreateCommand(g), newGetCommand(g), newDescribeCommand(g),
		newDeleteCommand(g), newAPIResourcesCommand(g), newLogsCommand(g),
		newScaleCommand(g), newSetCommand(g), newRolloutCommand(g),
	)
	err := root.Execute()
	if g.conn != nil {
		_ = g.conn.Close()
	}
	if err == nil {
		return cmdutil.ExitOK
	}
	if errors.As(err, new(silentError)) {
		return cmdutil.ExitFailure
	}
	var ue *usageError
	if errors.As(err, &ue) || strings.HasPrefix(err.Error(), "unknown command") || strings.Contains(err.Error(), "accepts ") {
		fmt.Fprintln(errOut, "error:", err)
		return cmdutil.ExitUsage
	}
	fmt.Fprintln(errOut, g.describeError(err))
	return cmdutil.ExitFailure
}

// client connects to the apiserver found by --server, $KUBELITE_SERVER or
// the config file.
func (g *globals) client() (*client.Client, error) {
	if g.conn != nil {
		return g.conn, nil
	}
	addr, from, err := cliconfig.Server(g.server)
	if err != nil {
		return nil, err
	}
	c, err := client.New(addr)
	if err != nil {
		return nil, err
	}
	g.conn, g.serverFrom = c, from
	return c, nil
}

// ns is the namespace to use: -n, else the config file's, else "default".
func (g *globals) ns() string {
	if g.namespace != "" {
		return g.namespace
	}
	if f, ok, _ := cliconfig.Load(); ok && f.Namespace != "" {
		return f.Namespace
	}
	return api.DefaultNamespace
}

func (g *globals) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), g.timeout)
}

// reasons maps gRPC codes to the reasons kubectl prints.
var reasons = map[codes.Code]string{
	codes.NotFound:           "NotFound",
	codes.AlreadyExists:      "AlreadyExists",
	codes.Aborted:            "Conflict",
	codes.InvalidArgument:    "Invalid",
	codes.OutOfRange:         "Expired",
	codes.Unimplemented:      "MethodNotAllowed",
	codes.DeadlineExceeded:   "Timeout",
	codes.FailedPrecondition: "BadRequest",
}

// describeError prints an error as kubectl does, and for an unreachable
// apiserver says where the address came from.
func (g *globals) describeError(err error) string {
	s, ok := status.FromError(err)
	if !ok {
		return "error: " + err.Error()
	}
	if s.Code() == codes.Unavailable && g.conn != nil {
		return fmt.Sprintf("error: the apiserver at %s (from %s) cannot be reached: %s\nStart a cluster with scripts/up.sh, or point kubectl-lite elsewhere with --server or $%s.",
			g.conn.Addr(), g.serverFrom, s.Message(), cliconfig.EnvServer)
	}
	if r, ok := reasons[s.Code()]; ok {
		return fmt.Sprintf("Error from server (%s): %s", r, s.Message())
	}
	return fmt.Sprintf("Error from server (%s): %s", s.Code(), s.Message())
}

// resolveKind reads a resource argument ("pods", "po", "deploy", "pod/web").
func resolveKind(arg string) (*api.Kind, string, error) {
	name := ""
	if i := strings.Index(arg, "/"); i >= 0 {
		arg, name = arg[:i], arg[i+1:]
	}
	k, err := api.Lookup(arg)
	if err != nil {
		return nil, "", &usageError{msg: err.Error()}
	}
	return k, name, nil
}

// readManifests reads -f arguments: files, folders (their .yaml, .yml and
// .json files) or "-" for stdin.
func (g *globals) readManifests(files []string) ([]api.Object, error) {
	if len(files) == 0 {
		return nil, usagef("must specify one of -f and -k")
	}
	var out []api.Object
	for _, f := range files {
		var paths []string
		if f == "-" {
			b, err := io.ReadAll(g.in)
			if err != nil {
				return nil, err
			}
			objs, err := api.ParseManifests(b, "stdin")
			if err != nil {
				return nil, err
			}
			out = append(out, objs...)
			continue
		}
		st, err := os.Stat(f)
		if err != nil {
			return nil, fmt.Errorf("the path %q does not exist", f)
		}
		if st.IsDir() {
			entries, err := os.ReadDir(f)
			if err != nil {
				return nil, err
			}
			for _, e := range entries {
				n := e.Name()
				if !e.IsDir() && (strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml") || strings.HasSuffix(n, ".json")) {
					paths = append(paths, f+"/"+n)
				}
			}
		} else {
			paths = []string{f}
		}
		for _, p := range paths {
			b, err := os.ReadFile(p)
			if err != nil {
				return nil, err
			}
			objs, err := api.ParseManifests(b, p)
			if err != nil {
				return nil, fmt.Errorf("error parsing %w", err)
			}
			out = append(out, objs...)
		}
	}
	return out, nil
}

// eachManifest runs do on every object of the -f files, printing what it
// says or its error; it fails, after trying them all, if any failed.
func (g *globals) eachManifest(files []string, do func(c *client.Client, obj api.Object) (string, error)) error {
	objs, err := g.readManifests(files)
	if err != nil {
		return err
	}
	c, err := g.client()
	if err != nil {
		return err
	}
	failed := false
	for _, obj := range objs {
		if err := g.setNamespace(obj); err != nil {
			return err
		}
		msg, err := do(c, obj)
		if err != nil {
			fmt.Fprintln(g.errOut, g.describeError(err))
			failed = true
			continue
		}
		fmt.Fprintln(g.out, msg)
	}
	if failed {
		return silentError{}
	}
	return nil
}

// setNamespace applies -n to a manifest object, refusing a conflict as
// kubectl does.
func (g *globals) setNamespace(o api.Object) error {
	k := api.KindOf(o)
	m := api.EnsureMeta(o)
	if !k.Namespaced {
		return nil
	}
	if m.Namespace == "" {
		m.Namespace = g.ns()
	} else if g.namespace != "" && m.Namespace != g.namespace {
		return fmt.Errorf("the namespace from the provided object %q does not match the namespace %q. You must pass '--namespace=%s' to perform this operation", m.Namespace, g.namespace, m.Namespace)
	}
	return nil
}

func ref(o api.Object) string {
	return strings.ToLower(api.KindOf(o).Kind) + "/" + o.GetMetadata().GetName()
}
