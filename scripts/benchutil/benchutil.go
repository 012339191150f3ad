// Package benchutil holds what the benchmark programs share: exit-time
// cleanup (also on failure, so nothing they start outlives them), free
// loopback ports, and starting a cluster with scripts/up.sh.
package benchutil

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
)

var cleanups []func()

// AtExit registers f to run at Cleanup (last registered, first run).
func AtExit(f func()) { cleanups = append(cleanups, f) }

// Cleanup runs the registered functions once.
func Cleanup() {
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	cleanups = nil
}

// Fail cleans up, prints the message and exits 1.
func Fail(prog, format string, args ...any) {
	Cleanup()
	fmt.Fprintf(os.Stderr, prog+": "+format+"\n", args...)
	os.Exit(1)
}

var (
	addrsMu   sync.Mutex          // guards addrsUsed
	addrsUsed = map[string]bool{} // every address handed out
)

// FreeAddr is a loopback host:port that was free a moment ago and that was
// not handed out before (the kernel may offer one free port twice in a row).
func FreeAddr() string {
	addrsMu.Lock()
	defer addrsMu.Unlock()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			panic(err)
		}
		a := l.Addr().String()
		l.Close()
		if !addrsUsed[a] {
			addrsUsed[a] = true
			return a
		}
	}
}

// FreePort is FreeAddr's port.
func FreePort() string {
	_, p, _ := net.SplitHostPort(FreeAddr())
	return p
}

// Cluster is a cluster started with scripts/up.sh in its own state folder.
type Cluster struct {
	State   string
	APIAddr string
	env     []string
	repo    string
}

// StartCluster runs scripts/up.sh with free ports and NODES=nodes; the
// cluster is stopped (and, unless keep, its folder removed) at Cleanup.
func StartCluster(prog string, nodes int, keep bool) *Cluster {
	repo, _ := filepath.Abs(".")
	state, err := os.MkdirTemp("", "kubelite-"+prog+"-")
	if err != nil {
		Fail(prog, "%v", err)
	}
	AtExit(func() {
		if keep {
			fmt.Fprintln(os.Stderr, prog+": logs kept in", state)
			return
		}
		os.RemoveAll(state)
	})
	port := FreePort()
	c := &Cluster{State: state, APIAddr: "127.0.0.1:" + port, repo: repo}
	c.env = append(os.Environ(), "KUBELITE_STATE="+state, "KUBELITE_CONFIG="+filepath.Join(state, "config"),
		"KUBELITE_API_PORT="+port, "KUBELITE_ETCD_PORT="+FreePort(), "KUBELITE_ETCD_PEER_PORT="+FreePort(),
		"KUBELITE_METRICS_PORT="+FreePort(), "NODES="+strconv.Itoa(nodes))
	AtExit(func() {
		if err := c.script("down.sh"); err != nil {
			fmt.Fprintln(os.Stderr, prog+":", err)
		}
	})
	if err := c.script("up.sh"); err != nil {
		Fail(prog, "%v", err)
	}
	return c
}

func (c *Cluster) script(name string) error {
	cmd := exec.Command(filepath.Join(c.repo, "scripts", name))
	cmd.Env, cmd.Dir = c.env, c.repo
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %v\n%s", name, err, out)
	}
	return nil
}
