package cmd

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kubelite/kubelite/internal/api"
	"github.com/kubelite/kubelite/internal/client"
)

type createOptions struct {
	files []string
}

func newCreateCommand(g *globals) *cobra.Command {
	o := &createOptions{}
	c := &cobra.Command{
		Use:   "create -f FILENAME",
		Short: "Create objects from files, folders or stdin",
		Args:  cobra.NoArgs,
		RunE:  func(_ *cobra.Command, _ []string) error { return runCreate(g, o) },
	}
	c.Flags().StringSliceVarP(&o.files, "filename", "f", nil, "file, folder or - (stdin) holding YAML or JSON manifests")
	return c
}

func runCreate(g *globals, o *createOptions) error {
	objs, err := g.readManifests(o.files)
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
		ctx, cancel := g.ctx()
		created, err := client.Dynamic(c, api.KindOf(obj)).Create(ctx, obj)
		cancel()
		if err != nil {
			fmt.Fprintln(g.errOut, g.describeError(err))
			failed = true
			continue
		}
		fmt.Fprintln(g.out, ref(created)+" created")
	}
	if failed {
		return silentError{}
	}
	return nil
}
