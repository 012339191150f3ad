package cmd

import (
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
	return g.eachManifest(o.files, func(c *client.Client, obj api.Object) (string, error) {
		ctx, cancel := g.ctx()
		defer cancel()
		created, err := client.Dynamic(c, api.KindOf(obj)).Create(ctx, obj)
		if err != nil {
			return "", err
		}
		return ref(created) + " created", nil
	})
}
