// Command kubectl-lite is kubectl for kubelite: the same verbs, flags and
// tables, over gRPC.
package main

import (
	"os"

	"github.com/kubelite/kubelite/kubectl-lite/cmd"
)

func main() {
	os.Exit(cmd.Execute(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
