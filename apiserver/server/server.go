package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/kubelite/kubelite/apiserver/registry"
	"github.com/kubelite/kubelite/internal/api"
)

// Config is the apiserver's configuration.
type Config struct {
	// Listen is the gRPC address, e.g. 127.0.0.1:6443.
	Listen string
	// EtcdEndpoints, when set, name an external etcd cluster; nothing is embedded.
	EtcdEndpoints []string
	// DataDir holds the embedded etcd's data.
	DataDir string
	// EtcdClientURL and EtcdPeerURL are where the embedded etcd listens.
	EtcdClientURL string
	EtcdPeerURL   string
	// EtcdAdvertiseClientURL and EtcdAdvertisePeerURL are what other members
	// and clients are told (default: the listen URLs).
	EtcdAdvertiseClientURL string
	EtcdAdvertisePeerURL   string
	// EtcdName, EtcdInitialCluster ("a=http://h1:2380,b=http://h2:2380") and
	// EtcdInitialClusterState (new or existing) make the embedded etcd one
	// member of a cluster (several apiservers, one member each).
	EtcdName                string
	EtcdInitialCluster      string
	EtcdInitialClusterState string
	// MetricsAddr serves /metrics and /healthz over HTTP; empty disables it.
	MetricsAddr string
	// CompactionInterval is how often etcd history is compacted (0: never).
	CompactionInterval time.Duration
	EventTTL           time.Duration
	// MaxRequestBytes limits one gRPC request's size. It sits above the
	// largest object (registry.MaxObjectBytes, so an object over that gets a
	// clear InvalidArgument naming its size) and below the embedded etcd's
	// request limit (EtcdMaxRequestBytes).
	MaxRequestBytes int
	// EtcdMaxRequestBytes is the embedded etcd's --max-request-bytes
	// (default: MaxRequestBytes + 1 MiB of headroom for keys and txn).
	EtcdMaxRequestBytes int
	// EtcdQuotaBackendBytes is the embedded etcd's --quota-backend-bytes
	// (0: etcd's default, 2 GiB).
	EtcdQuotaBackendBytes int64
	// DefragMinFreeBytes: after a compaction, a member with at least this
	// much free space (dbSize - dbSizeInUse) is defragmented.
	DefragMinFreeBytes int64
	// MinRequestTimeout: a watch ends after a random one to two of these.
	MinRequestTimeout time.Duration
	// MaxWatches and MaxWatchesPerClient cap open Watch streams
	// server-wide and per client connection (0: no cap).
	MaxWatches          int
	MaxWatchesPerClient int
	// MaxStreamsPerConnection is HTTP/2's SETTINGS_MAX_CONCURRENT_STREAMS:
	// a client's further calls on one connection wait for a free stream
	// (default: MaxWatchesPerClient + 100, or 1100 without that cap;
	// Kubernetes serves 1000 per connection).
	MaxStreamsPerConnection int
	// WatchCacheSize and WatchCacheBytes bound each resource's watch
	// history, in events and in bytes.
	WatchCacheSize  int
	WatchCacheBytes int64
	// HealthCheckInterval and HealthCheckTimeout: how often etcd is probed
	// for the health service and /healthz, and how long it may take.
	HealthCheckInterval time.Duration
	HealthCheckTimeout  time.Duration
	ShutdownTimeout     time.Duration
	// Ready, if set, is called with the gRPC address once the server serves.
	Ready func(addr string)
}

// Validate checks the configuration and names the flag at fault.
func (c *Config) Validate() error {
	if c.Listen == "" {
		return errors.New("--listen: required, e.g. 127.0.0.1:6443")
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("--listen %q: expected host:port: %w", c.Listen, err)
	}
	if len(c.EtcdEndpoints) == 0 {
		if c.DataDir == "" {
			return errors.New("--data-dir: required when etcd is embedded (no --etcd-endpoints)")
		}
		for flag, u := range map[string]string{"--etcd-client-url": c.EtcdClientURL, "--etcd-peer-url": c.EtcdPeerURL} {
			if _, err := url.Parse(u); err != nil || !strings.HasPrefix(u, "http://") {
				return fmt.Errorf("%s %q: expected a URL such as http://127.0.0.1:2379", flag, u)
			}
		}
		if s := c.EtcdInitialClusterState; s != "" && s != "new" && s != "existing" {
			return fmt.Errorf("--etcd-initial-cluster-state %q: expected new or existing", s)
		}
	}
	if c.MaxRequestBytes <= registry.MaxObjectBytes {
		return fmt.Errorf("--max-request-bytes %d: must be more than the object limit of %d bytes, so an oversized object gets a clear error", c.MaxRequestBytes, registry.MaxObjectBytes)
	}
	if c.EtcdMaxRequestBytes != 0 && c.EtcdMaxRequestBytes <= c.MaxRequestBytes {
		return fmt.Errorf("--etcd-max-request-bytes %d: must be more than --max-request-bytes %d, so that what the apiserver accepts etcd accepts too", c.EtcdMaxRequestBytes, c.MaxRequestBytes)
	}
	for flag, v := range map[string]int64{"--etcd-quota-backend-bytes": c.EtcdQuotaBackendBytes, "--defrag-min-free-bytes": c.DefragMinFreeBytes,
		"--max-watches": int64(c.MaxWatches), "--max-watches-per-client": int64(c.MaxWatchesPerClient), "--max-streams-per-connection": int64(c.MaxStreamsPerConnection), "--watch-cache-size": int64(c.WatchCacheSize),
		"--watch-cache-bytes": c.WatchCacheBytes, "--min-request-timeout": int64(c.MinRequestTimeout),
		"--health-check-interval": int64(c.HealthCheckInterval), "--health-check-timeout": int64(c.HealthCheckTimeout)} {
		if v < 0 {
			return fmt.Errorf("%s %d: must not be negative", flag, v)
		}
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.EtcdMaxRequestBytes == 0 {
		c.EtcdMaxRequestBytes = c.MaxRequestBytes + 1<<20
	}
	if c.DefragMinFreeBytes == 0 {
		c.DefragMinFreeBytes = 32 << 20
	}
	if c.MaxStreamsPerConnection == 0 {
		c.MaxStreamsPerConnection = 1100
		if c.MaxWatchesPerClient > 0 {
			c.MaxStreamsPerConnection = c.MaxWatchesPerClient + 100
		}
	}
	if c.MinRequestTimeout == 0 {
		c.MinRequestTimeout = 5 * time.Minute
	}
	if c.HealthCheckInterval == 0 {
		c.HealthCheckInterval = 5 * time.Second
	}
	if c.HealthCheckTimeout == 0 {
		c.HealthCheckTimeout = 2 * time.Second
	}
}

// Run serves until ctx ends, then shuts down in order: stop accepting gRPC
// (graceful, bounded by ShutdownTimeout), stop watches, close the etcd
// client, close the embedded etcd.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	cfg.setDefaults()
	endpoints := cfg.EtcdEndpoints
	var client *clientv3.Client
	var maintLocal func(ctx context.Context) ([]registry.Member, error)
	var maintCluster func(ctx context.Context) ([]registry.Member, func(), error)
	if len(endpoints) == 0 {
		e, err := StartEmbeddedEtcdMember(EtcdMember{DataDir: cfg.DataDir, ClientURL: cfg.EtcdClientURL, PeerURL: cfg.EtcdPeerURL,
			AdvertiseClientURL: cfg.EtcdAdvertiseClientURL, AdvertisePeerURL: cfg.EtcdAdvertisePeerURL,
			Name: cfg.EtcdName, InitialCluster: cfg.EtcdInitialCluster, InitialClusterState: cfg.EtcdInitialClusterState,
			MaxRequestBytes: cfg.EtcdMaxRequestBytes, QuotaBackendBytes: cfg.EtcdQuotaBackendBytes})
		if err != nil {
			return err
		}
		defer e.Close()
		endpoints = []string{e.Clients[0].Addr().String()}
		slog.Info("embedded etcd ready", "client_url", "http://"+endpoints[0], "data_dir", cfg.DataDir)
		// In-process calls: no socket and no serialisation between the
		// apiserver and its own etcd. Others use the client URL.
		client = v3client.New(e.Server)
		maintLocal, maintCluster = embeddedMembers(client, e)
	} else {
		c, err := clientv3.New(clientv3.Config{
			Endpoints:   endpoints,
			DialTimeout: 5 * time.Second,
			Logger:      zap.NewNop(),
			// Watches and lists of many objects exceed the 4 MiB default.
			MaxCallRecvMsgSize: 512 << 20,
		})
		if err != nil {
			return fmt.Errorf("etcd client for %v: %w", endpoints, err)
		}
		client = c
		members := registry.EndpointMembers(client, endpoints)
		maintLocal = func(context.Context) ([]registry.Member, error) { return members, nil }
		maintCluster = func(context.Context) ([]registry.Member, func(), error) { return members, func() {}, nil }
	}
	defer client.Close()
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	_, err := client.Get(sctx, "health-check")
	cancel()
	if err != nil {
		return fmt.Errorf("etcd at %v does not answer: %w", endpoints, err)
	}

	regCtx, stopReg := context.WithCancel(context.Background())
	defer stopReg()
	reg := registry.New(client, registry.Options{EventTTL: cfg.EventTTL, WatchCacheSize: cfg.WatchCacheSize, WatchCacheBytes: cfg.WatchCacheBytes})
	reg.Start(regCtx)
	if err := reg.WaitReady(ctx); err != nil {
		return err
	}
	holder, _ := os.Hostname()
	maint := &registry.Maintenance{Client: client, Local: maintLocal, Cluster: maintCluster, DefragMinFreeBytes: cfg.DefragMinFreeBytes,
		Holder: holder + " " + cfg.Listen, LockWait: cfg.CompactionInterval / 2}
	go registry.RunCompactor(regCtx, client, cfg.CompactionInterval, maint.DefragIfWorthwhile)

	metrics := newMetrics()
	gs := grpc.NewServer(
		grpc.MaxRecvMsgSize(cfg.MaxRequestBytes),
		grpc.MaxConcurrentStreams(uint32(cfg.MaxStreamsPerConnection)),
		// Recovery first, so a panic anywhere below is caught.
		grpc.ChainUnaryInterceptor(recoverUnary, metrics.unary),
		grpc.ChainStreamInterceptor(recoverStream, metrics.stream),
	)
	kubelets := newKubeletDialer()
	defer kubelets.close()
	limits := newWatchLimits(cfg.MaxWatches, cfg.MaxWatchesPerClient, cfg.MinRequestTimeout)
	metrics.registry.MustRegister(limits.open)
	for _, k := range api.Kinds {
		gs.RegisterService(serviceDesc(reg, kubelets, limits, reg.Store(k.Kind)), struct{}{})
	}
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	checker := &etcdHealth{client: client, maint: maint, interval: cfg.HealthCheckInterval, timeout: cfg.HealthCheckTimeout, hs: hs,
		defragmenting: func() bool { return maint.Defragmenting(cfg.HealthCheckTimeout) }}
	reflection.Register(gs)

	lis, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", cfg.Listen, err)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- gs.Serve(lis) }()

	var httpSrv *http.Server
	if cfg.MetricsAddr != "" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(metrics.registry, promhttp.HandlerOpts{}))
		mux.HandleFunc("/healthz", checker.healthz)
		ml, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			gs.Stop()
			return fmt.Errorf("--metrics-addr %s: %w", cfg.MetricsAddr, err)
		}
		httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = httpSrv.Serve(ml) }()
	}
	checker.check(ctx)
	go checker.run(regCtx)
	slog.Info("apiserver serving", "addr", lis.Addr().String(), "etcd", endpoints)
	if cfg.Ready != nil {
		cfg.Ready(lis.Addr().String())
	}

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		return fmt.Errorf("grpc server: %w", err)
	}
	slog.Info("apiserver shutting down")
	checker.shutdown()
	if httpSrv != nil {
		_ = httpSrv.Close()
	}
	stopReg() // ends watch caches, so open Watch streams return
	done := make(chan struct{})
	go func() { gs.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(cfg.ShutdownTimeout):
		gs.Stop()
	}
	return nil
}

// embeddedMembers are the members an apiserver with an embedded etcd looks
// after: after each compaction period its own (every apiserver of a cluster
// checks its own member; the maintenance lock keeps them one at a time),
// and on NOSPACE every member of the cluster, reached by its client URL.
func embeddedMembers(client *clientv3.Client, e *embed.Etcd) (local func(context.Context) ([]registry.Member, error), cluster func(context.Context) ([]registry.Member, func(), error)) {
	own := registry.Member{
		Name: "embedded " + e.Config().Name,
		Status: func(ctx context.Context) (*clientv3.StatusResponse, error) {
			ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			// The in-process client reaches only its own member, whatever the endpoint.
			return client.Status(ctx, "embedded")
		},
		Defragment: func(context.Context) error { return e.Server.Defragment() },
	}
	local = func(context.Context) ([]registry.Member, error) { return []registry.Member{own}, nil }
	cluster = func(ctx context.Context) ([]registry.Member, func(), error) {
		ml, err := client.MemberList(ctx)
		if err != nil {
			return nil, nil, err
		}
		if len(ml.Members) <= 1 {
			return []registry.Member{own}, func() {}, nil
		}
		var urls []string
		for _, m := range ml.Members {
			if len(m.ClientURLs) == 0 {
				return nil, nil, fmt.Errorf("etcd member %s (%x) has no client URL yet", m.Name, m.ID)
			}
			urls = append(urls, m.ClientURLs[0])
		}
		c, err := clientv3.New(clientv3.Config{Endpoints: urls, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			return nil, nil, fmt.Errorf("etcd client for members %v: %w", urls, err)
		}
		return registry.EndpointMembers(c, urls), func() { _ = c.Close() }, nil
	}
	return local, cluster
}

// StartEmbeddedEtcd starts a single-member etcd in dataDir and waits until
// it serves.
func StartEmbeddedEtcd(dataDir, clientURL, peerURL string) (*embed.Etcd, error) {
	return StartEmbeddedEtcdMember(EtcdMember{DataDir: dataDir, ClientURL: clientURL, PeerURL: peerURL})
}

// EtcdMember describes an embedded etcd member; the zero values of the
// cluster fields make a cluster of one.
type EtcdMember struct {
	DataDir, ClientURL, PeerURL               string
	AdvertiseClientURL, AdvertisePeerURL      string
	Name, InitialCluster, InitialClusterState string
	// MaxRequestBytes and QuotaBackendBytes are etcd's flags of those
	// names; 0 keeps etcd's defaults (1.5 MiB and 2 GiB).
	MaxRequestBytes   int
	QuotaBackendBytes int64
}

// StartEmbeddedEtcdMember starts an embedded etcd member and waits until it
// serves (for a new cluster: until enough members have joined).
func StartEmbeddedEtcdMember(m EtcdMember) (*embed.Etcd, error) {
	if err := os.MkdirAll(m.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("--data-dir %s: %w", m.DataDir, err)
	}
	parse := func(flag, v, def string) (url.URL, error) {
		if v == "" {
			v = def
		}
		u, err := url.Parse(v)
		if err != nil || u.Host == "" {
			return url.URL{}, fmt.Errorf("%s %q: expected a URL such as http://127.0.0.1:2379", flag, v)
		}
		return *u, nil
	}
	cu, err := parse("--etcd-client-url", m.ClientURL, "")
	if err != nil {
		return nil, err
	}
	pu, err := parse("--etcd-peer-url", m.PeerURL, "")
	if err != nil {
		return nil, err
	}
	acu, err := parse("--etcd-advertise-client-url", m.AdvertiseClientURL, m.ClientURL)
	if err != nil {
		return nil, err
	}
	apu, err := parse("--etcd-advertise-peer-url", m.AdvertisePeerURL, m.PeerURL)
	if err != nil {
		return nil, err
	}
	clientURL, peerURL := m.ClientURL, m.PeerURL
	cfg := embed.NewConfig()
	cfg.Name = "kubelite"
	if m.Name != "" {
		cfg.Name = m.Name
	}
	cfg.Dir = filepath.Join(m.DataDir, "etcd")
	cfg.ListenClientUrls = []url.URL{cu}
	cfg.AdvertiseClientUrls = []url.URL{acu}
	cfg.ListenPeerUrls = []url.URL{pu}
	cfg.AdvertisePeerUrls = []url.URL{apu}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	if m.InitialCluster != "" {
		cfg.InitialCluster = m.InitialCluster
	}
	if m.InitialClusterState != "" {
		cfg.ClusterState = m.InitialClusterState
	}
	if m.MaxRequestBytes > 0 {
		cfg.MaxRequestBytes = uint(m.MaxRequestBytes)
	}
	if m.QuotaBackendBytes > 0 {
		cfg.QuotaBackendBytes = m.QuotaBackendBytes
	}
	cfg.LogLevel = "error"
	cfg.Logger = "zap"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(quietEtcdLogger())
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd %s (client %s, peer %s, data %s): %w", cfg.Name, clientURL, peerURL, cfg.Dir, err)
	}
	select {
	case <-e.Server.ReadyNotify():
		return e, nil
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("embedded etcd: %w", err)
	case <-time.After(5 * time.Minute):
		e.Close()
		return nil, errors.New("embedded etcd did not become ready within 5 minutes (a new cluster waits for a quorum of its members)")
	}
}

type metrics struct {
	registry *prometheus.Registry
	requests *prometheus.HistogramVec
	watches  prometheus.Gauge
}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "apiserver_request_duration_seconds",
			Help:    "gRPC request latency by method and code.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18),
		}, []string{"method", "code"}),
		watches: prometheus.NewGauge(prometheus.GaugeOpts{Name: "apiserver_watchers", Help: "Open Watch streams."}),
	}
	m.registry.MustRegister(m.requests, m.watches, registry.DecodeErrors, prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := h(ctx, req)
	m.requests.WithLabelValues(info.FullMethod, status.Code(err).String()).Observe(time.Since(start).Seconds())
	return resp, err
}

func (m *metrics) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	m.watches.Inc()
	defer m.watches.Dec()
	return h(srv, ss)
}

// quietEtcdLogger logs the embedded etcd's errors to stderr, minus the
// "setting up serving ... failed" lines every normal shutdown prints (their
// listeners were closed on purpose); a real start failure still surfaces
// through embed.Etcd.Err and ReadyNotify.
func quietEtcdLogger() *zap.Logger {
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	core := zapcore.NewCore(enc, zapcore.Lock(os.Stderr), zapcore.ErrorLevel)
	return zap.New(&dropMessage{Core: core, msg: "setting up serving from embedded etcd failed."})
}

type dropMessage struct {
	zapcore.Core
	msg string
}

func (d *dropMessage) With(f []zapcore.Field) zapcore.Core {
	return &dropMessage{Core: d.Core.With(f), msg: d.msg}
}

func (d *dropMessage) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if e.Message == d.msg {
		return ce
	}
	return d.Core.Check(e, ce)
}
