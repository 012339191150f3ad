// Package apiservertest starts a real apiserver with a real embedded etcd on
// free loopback ports, for integration tests of anything that talks to it.
package apiservertest

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/kubelite/kubelite/apiserver/server"
	"github.com/kubelite/kubelite/internal/client"
)

var (
	portsMu   sync.Mutex       // guards portsUsed
	portsUsed = map[int]bool{} // every port handed out by this process
)

// FreePort returns a loopback port that was free a moment ago and that this
// process has not handed out before (the kernel may offer the same free
// port twice in a row, e.g. for an etcd client and peer URL).
func FreePort(t testing.TB) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("free port: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !portsUsed[port] {
			portsUsed[port] = true
			return port
		}
	}
}

// Server is a running apiserver.
type Server struct {
	Addr       string // gRPC host:port
	EtcdURL    string // embedded etcd client URL ("" with external etcd)
	MetricsURL string // http://host:port with Options.Metrics
	Client     *client.Client
	cancel     context.CancelFunc
	done       chan error
	stopped    bool
}

// Options tune Start; the zero value embeds etcd.
type Options struct {
	EtcdEndpoints      []string
	CompactionInterval time.Duration
	DataDir            string
	// Listen is the gRPC address; a free port when empty.
	Listen string
	// Metrics serves /metrics and /healthz on a free port (Server.MetricsURL).
	Metrics bool
	// Configure, if set, adjusts the configuration before the start.
	Configure func(*server.Config)
}

// Start runs an apiserver until the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	dir := opts.DataDir
	if dir == "" {
		dir = t.TempDir()
	}
	etcdURL := ""
	if len(opts.EtcdEndpoints) == 0 {
		etcdURL = fmt.Sprintf("http://127.0.0.1:%d", FreePort(t))
	}
	if opts.Listen == "" {
		opts.Listen = fmt.Sprintf("127.0.0.1:%d", FreePort(t))
	}
	cfg := server.Config{
		Listen:             opts.Listen,
		EtcdEndpoints:      opts.EtcdEndpoints,
		DataDir:            dir,
		EtcdClientURL:      etcdURL,
		EtcdPeerURL:        fmt.Sprintf("http://127.0.0.1:%d", FreePort(t)),
		CompactionInterval: opts.CompactionInterval,
		EventTTL:           time.Hour,
		MaxRequestBytes:    3 << 20,
		ShutdownTimeout:    5 * time.Second,
	}
	metricsURL := ""
	if opts.Metrics {
		cfg.MetricsAddr = fmt.Sprintf("127.0.0.1:%d", FreePort(t))
		metricsURL = "http://" + cfg.MetricsAddr
	}
	if opts.Configure != nil {
		opts.Configure(&cfg)
	}
	ready := make(chan string, 1)
	cfg.Ready = func(addr string) { ready <- addr }
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{EtcdURL: etcdURL, MetricsURL: metricsURL, cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- server.Run(ctx, cfg) }()
	select {
	case s.Addr = <-ready:
	case err := <-s.done:
		cancel()
		t.Fatalf("apiserver did not start: %v", err)
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatalf("apiserver did not start within 60s")
	}
	c, err := client.New(s.Addr)
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	s.Client = c
	t.Cleanup(s.Stop)
	return s
}

// Stop shuts the apiserver down and waits for it.
func (s *Server) Stop() {
	if s.stopped {
		return
	}
	s.stopped = true
	_ = s.Client.Close()
	s.cancel()
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
	}
}
