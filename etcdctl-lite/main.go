// Command etcdctl-lite reads kubelite's keys in etcd (embedded or any etcd
// cluster) and decodes the stored objects.
package main

import (
	"os"

	"github.com/kubelite/kubelite/etcdctl-lite/cmd"
)

func main() {
	os.Exit(cmd.Execute(os.Args[1:], os.Stdout, os.Stderr))
}
