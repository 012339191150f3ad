package server_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/kubelite/kubelite/apiserver/apiservertest"
	"github.com/kubelite/kubelite/apiserver/server"
	"github.com/kubelite/kubelite/internal/client"
	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

// waitFor polls cond until it holds, failing after a generous deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func healthOf(s *apiservertest.Server) healthpb.HealthCheckResponse_ServingStatus {
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(s.Client.Conn()).Check(c, &healthpb.HealthCheckRequest{})
	if err != nil {
		return healthpb.HealthCheckResponse_UNKNOWN
	}
	return resp.Status
}

// healthz returns /healthz's status code and body.
func healthz(t *testing.T, s *apiservertest.Server) (int, string) {
	resp, err := http.Get(s.MetricsURL + "/healthz")
	if err != nil {
		t.Fatalf("/healthz: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func podWithEnv(name string, valueBytes int) *v1.Pod {
	p := pod(name, nil)
	p.Spec.Containers[0].Env = []*v1.EnvVar{{Name: "BIG", Value: strings.Repeat("x", valueBytes)}}
	return p
}

func TestWatchFromAFutureRevisionIsTooLarge(t *testing.T) {
	s := apiservertest.Start(t, apiservertest.Options{})
	created, err := s.Client.Pods().Create(ctx(t), pod("a", nil))
	if err != nil {
		t.Fatal(err)
	}
	rv, _ := strconv.ParseInt(created.Metadata.ResourceVersion, 10, 64)
	_, err = s.Client.Pods().Watch(ctx(t), &v1.WatchRequest{ResourceVersion: strconv.FormatInt(rv+1000, 10)})
	// OutOfRange is what makes clients relist (client.IsTooOld).
	wantCode(t, err, codes.OutOfRange)
	if !strings.Contains(err.Error(), "too large resource version") {
		t.Errorf("error = %v, want it to say too large resource version", err)
	}
	// The current revision itself is fine.
	w, err := s.Client.Pods().Watch(ctx(t), &v1.WatchRequest{ResourceVersion: created.Metadata.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	w.Stop()
}

func TestHealthFollowsEtcd(t *testing.T) {
	dir := t.TempDir()
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", apiservertest.FreePort(t))
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", apiservertest.FreePort(t))
	e, err := server.StartEmbeddedEtcd(dir, etcdURL, peerURL)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if e != nil {
			e.Close()
		}
	}()
	s := apiservertest.Start(t, apiservertest.Options{EtcdEndpoints: []string{etcdURL}, Metrics: true, Configure: func(c *server.Config) {
		c.HealthCheckInterval = 100 * time.Millisecond
		c.HealthCheckTimeout = 500 * time.Millisecond
	}})
	if st := healthOf(s); st != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health = %s, want SERVING", st)
	}
	if code, body := healthz(t, s); code != http.StatusOK {
		t.Fatalf("/healthz = %d %s, want 200", code, body)
	}

	e.Close()
	e = nil
	waitFor(t, "NOT_SERVING while etcd is down", func() bool { return healthOf(s) == healthpb.HealthCheckResponse_NOT_SERVING })
	code, body := healthz(t, s)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "etcd does not answer") {
		t.Errorf("/healthz = %d %q, want 503 naming etcd", code, body)
	}

	e, err = server.StartEmbeddedEtcd(dir, etcdURL, peerURL)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "SERVING once etcd is back", func() bool { return healthOf(s) == healthpb.HealthCheckResponse_SERVING })
	if code, body := healthz(t, s); code != http.StatusOK {
		t.Errorf("/healthz = %d %s after etcd recovered, want 200", code, body)
	}
	if _, err := s.Client.Pods().Create(ctx(t), pod("after", nil)); err != nil {
		t.Errorf("create after etcd recovered: %v", err)
	}
}

func TestPanicInAStreamIsRecovered(t *testing.T) {
	s := apiservertest.Start(t, apiservertest.Options{})
	server.SetWatchHook(func(resource string) {
		if resource == "pods" {
			panic("test: a watch handler panics")
		}
	})
	defer server.SetWatchHook(nil)
	_, err := s.Client.Pods().Watch(ctx(t), &v1.WatchRequest{})
	wantCode(t, err, codes.Internal)
	// The apiserver still serves, streams included.
	server.SetWatchHook(nil)
	if _, err := s.Client.Pods().Create(ctx(t), pod("a", nil)); err != nil {
		t.Fatalf("create after a panic: %v", err)
	}
	w, err := s.Client.Pods().Watch(ctx(t), &v1.WatchRequest{})
	if err != nil {
		t.Fatalf("watch after a panic: %v", err)
	}
	defer w.Stop()
	if typ, p, err := w.Recv(); err != nil || typ != "ADDED" || p.Metadata.Name != "a" {
		t.Errorf("first event = %s %v %v, want ADDED a", typ, p, err)
	}
}

func TestPanicWhileSendingAWatchEventIsRecovered(t *testing.T) {
	s := apiservertest.Start(t, apiservertest.Options{})
	if _, err := s.Client.Pods().Create(ctx(t), pod("a", nil)); err != nil {
		t.Fatal(err)
	}
	server.SetSendHook(func(resource string) {
		if resource == "pods" {
			panic("test: sending a watch event panics")
		}
	})
	defer server.SetSendHook(nil)
	w, err := s.Client.Pods().Watch(ctx(t), &v1.WatchRequest{})
	if err == nil {
		defer w.Stop()
		_, _, err = w.Recv()
	}
	wantCode(t, err, codes.Internal)
	// The apiserver still serves, streams included.
	server.SetSendHook(nil)
	w2, err := s.Client.Pods().Watch(ctx(t), &v1.WatchRequest{})
	if err != nil {
		t.Fatalf("watch after a panic: %v", err)
	}
	defer w2.Stop()
	if typ, p, err := w2.Recv(); err != nil || typ != "ADDED" || p.Metadata.Name != "a" {
		t.Errorf("first event = %s %v %v, want ADDED a", typ, p, err)
	}
}

func TestObjectOverTheSizeLimitIsInvalidAndNotStored(t *testing.T) {
	s := apiservertest.Start(t, apiservertest.Options{})
	pods := s.Client.Pods()
	_, err := pods.Create(ctx(t), podWithEnv("big", 2<<20))
	wantCode(t, err, codes.InvalidArgument)
	if !strings.Contains(err.Error(), "more than the limit of 1572864") || !strings.Contains(err.Error(), "object is 2097") {
		t.Errorf("error = %v, want the object's size and the 1572864-byte limit", err)
	}
	resp, err := etcdClient(t, s.EtcdURL).Get(ctx(t), "/registry/pods/default/big")
	if err != nil || len(resp.Kvs) != 0 {
		t.Errorf("etcd holds %d keys for the refused pod (err %v), want none", len(resp.Kvs), err)
	}

	// Growing an existing object past the limit fails the same way.
	small, err := pods.Create(ctx(t), pod("small", nil))
	if err != nil {
		t.Fatal(err)
	}
	small.Spec.Containers[0].Env = []*v1.EnvVar{{Name: "BIG", Value: strings.Repeat("x", 2<<20)}}
	_, err = pods.Update(ctx(t), small)
	wantCode(t, err, codes.InvalidArgument)
	got, err := pods.Get(ctx(t), "default", "small")
	if err != nil || len(got.Spec.Containers[0].Env) != 0 {
		t.Errorf("stored pod changed by a refused update: %v %v", got.GetSpec().GetContainers(), err)
	}
	// Just under the limit is accepted.
	if _, err := pods.Create(ctx(t), podWithEnv("fits", 1<<20)); err != nil {
		t.Errorf("a 1 MiB pod: %v", err)
	}
}

// rssKiB is this process's resident set size.
func rssKiB() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return -1
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// openWatches opens n pod watches from rv on c, concurrently, and returns
// the open ones and the errors of the refused ones.
func openWatches(t *testing.T, c *client.Client, n int, rv string) ([]*client.WatchStream[*v1.Pod], []error) {
	var mu sync.Mutex
	var open []*client.WatchStream[*v1.Pod]
	var refused []error
	var wg sync.WaitGroup
	next := make(chan int)
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				w, err := c.Pods().Watch(context.Background(), &v1.WatchRequest{ResourceVersion: rv})
				mu.Lock()
				if err != nil {
					refused = append(refused, err)
				} else {
					open = append(open, w)
				}
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	t.Cleanup(func() {
		for _, w := range open {
			w.Stop()
		}
	})
	return open, refused
}

func TestWatchCapsRefuseCleanlyAndMemoryStaysBounded(t *testing.T) {
	s := apiservertest.Start(t, apiservertest.Options{Configure: func(c *server.Config) {
		c.MaxWatchesPerClient = 1000
		c.MaxWatches = 1500
	}})
	created, err := s.Client.Pods().Create(ctx(t), pod("a", nil))
	if err != nil {
		t.Fatal(err)
	}
	rv := created.Metadata.ResourceVersion
	heapBefore, rssBefore := heapInUse(), rssKiB()

	open, refused := openWatches(t, s.Client, 2000, rv)
	if len(open) != 1000 || len(refused) != 1000 {
		t.Fatalf("one client opened %d watches and was refused %d, want 1000 and 1000", len(open), len(refused))
	}
	for _, err := range refused {
		if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "at most 1000 per client") {
			t.Fatalf("refused watch: %v, want ResourceExhausted naming the per-client limit", err)
		}
	}
	// A second client (another host: 127.0.0.2) hits the server-wide cap.
	other, err := client.New(s.Addr, grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
		return d.DialContext(ctx, "tcp", addr)
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	open2, refused2 := openWatches(t, other, 600, rv)
	if len(open2) != 500 || len(refused2) != 100 {
		t.Fatalf("a second client opened %d and was refused %d, want 500 and 100", len(open2), len(refused2))
	}
	if !strings.Contains(refused2[0].Error(), "at most 1500") || status.Code(refused2[0]) != codes.ResourceExhausted {
		t.Errorf("refused watch: %v, want ResourceExhausted naming the server-wide limit", refused2[0])
	}

	heapAfter, rssAfter := heapInUse(), rssKiB()
	t.Logf("1500 idle watches (server and clients in this process): heap %d -> %d MiB, RSS %d -> %d MiB",
		heapBefore>>20, heapAfter>>20, rssBefore>>10, rssAfter>>10)
	if grown := int64(heapAfter) - int64(heapBefore); grown > 200<<20 {
		t.Errorf("1500 idle watches grew the heap by %d MiB, want under 200 MiB", grown>>20)
	}

	// The server stays healthy and the open watches still work.
	if st := healthOf(s); st != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health = %s, want SERVING", st)
	}
	if _, err := s.Client.Pods().Create(ctx(t), pod("b", nil)); err != nil {
		t.Fatal(err)
	}
	for _, w := range []*client.WatchStream[*v1.Pod]{open[0], open[len(open)-1], open2[0]} {
		if typ, p, err := w.Recv(); err != nil || typ != "ADDED" || p.Metadata.Name != "b" {
			t.Errorf("event = %s %v %v, want ADDED b", typ, p, err)
		}
	}
	// Closed watches give their slots back.
	for _, w := range open[:10] {
		w.Stop()
	}
	waitFor(t, "a freed slot", func() bool {
		w, err := s.Client.Pods().Watch(ctx(t), &v1.WatchRequest{ResourceVersion: rv})
		if err != nil {
			return false
		}
		w.Stop()
		return true
	})
}

func TestUndecodableValueIsSkipped(t *testing.T) {
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", apiservertest.FreePort(t))
	e, err := server.StartEmbeddedEtcd(t.TempDir(), etcdURL, fmt.Sprintf("http://127.0.0.1:%d", apiservertest.FreePort(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ec := etcdClient(t, etcdURL)
	// Garbage before the apiserver starts (its watch cache's first list)...
	if _, err := ec.Put(ctx(t), "/registry/pods/default/x", "not an object"); err != nil {
		t.Fatal(err)
	}
	s := apiservertest.Start(t, apiservertest.Options{EtcdEndpoints: []string{etcdURL}, Metrics: true})
	pods := s.Client.Pods()
	for _, n := range []string{"a", "b"} {
		if _, err := pods.Create(ctx(t), pod(n, nil)); err != nil {
			t.Fatal(err)
		}
	}
	// ...and while it runs (its watch cache's etcd watch).
	if _, err := ec.Put(ctx(t), "/registry/pods/default/y", "\x00garbage"); err != nil {
		t.Fatal(err)
	}
	items, _, err := pods.List(ctx(t), nil)
	if err != nil {
		t.Fatalf("list with an undecodable key: %v", err)
	}
	if len(items) != 2 {
		t.Errorf("list = %d pods, want a and b", len(items))
	}
	w, err := pods.Watch(ctx(t), &v1.WatchRequest{})
	if err != nil {
		t.Fatalf("watch with an undecodable key: %v", err)
	}
	defer w.Stop()
	for _, want := range []string{"a", "b"} {
		if typ, p, err := w.Recv(); err != nil || typ != "ADDED" || p.Metadata.Name != want {
			t.Errorf("event = %s %v %v, want ADDED %s", typ, p, err, want)
		}
	}
	_, err = pods.Get(ctx(t), "default", "x")
	wantCode(t, err, codes.Internal)

	resp, err := http.Get(s.MetricsURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	found := false
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, `apiserver_storage_decode_errors_total{resource="pods"} `); ok {
			n, _ := strconv.ParseFloat(v, 64)
			found = n >= 2
		}
	}
	if !found {
		t.Errorf("metrics lack apiserver_storage_decode_errors_total{resource=\"pods\"} >= 2")
	}
}

func TestEtcdNoSpaceIsReportedAndRecovers(t *testing.T) {
	s := apiservertest.Start(t, apiservertest.Options{Metrics: true, Configure: func(c *server.Config) {
		c.EtcdQuotaBackendBytes = 8 << 20
		c.HealthCheckInterval = 100 * time.Millisecond
	}})
	pods := s.Client.Pods()
	var created []string
	var err error
	for i := 0; ; i++ {
		if i == 200 {
			t.Fatal("200 pods of 256 KiB never filled an 8 MiB etcd")
		}
		name := fmt.Sprintf("p%d", i)
		if _, err = pods.Create(ctx(t), podWithEnv(name, 256<<10)); err != nil {
			break
		}
		created = append(created, name)
	}
	wantCode(t, err, codes.ResourceExhausted)
	if !strings.Contains(err.Error(), "etcd space exceeded") {
		t.Errorf("error = %v, want it to say etcd space exceeded", err)
	}
	t.Logf("etcd full after %d pods: %v", len(created), err)
	// Health says so (a write re-raises the alarm if recovery disarmed it
	// while the data still fills the quota).
	probes := 0
	waitFor(t, "/healthz to report NOSPACE", func() bool {
		code, body := healthz(t, s)
		if code == http.StatusServiceUnavailable && strings.Contains(body, "etcd space exceeded") {
			return true
		}
		// A new name each time: every probe is a write that can raise the
		// alarm again.
		probes++
		_, _ = pods.Create(ctx(t), podWithEnv(fmt.Sprintf("probe-%d", probes), 256<<10))
		return false
	})

	// Deletes go through under the alarm; then the apiserver compacts,
	// defragments and disarms, and writes succeed again.
	for _, name := range created {
		if _, err := pods.Delete(ctx(t), "default", name, nil); err != nil && !client.IsNotFound(err) {
			t.Fatalf("delete %s: %v", name, err)
		}
	}
	waitFor(t, "writes to succeed again", func() bool {
		_, err := pods.Create(ctx(t), pod("after", nil))
		return err == nil || client.IsAlreadyExists(err)
	})
	waitFor(t, "health to recover", func() bool { return healthOf(s) == healthpb.HealthCheckResponse_SERVING })
	if code, body := healthz(t, s); code != http.StatusOK {
		t.Errorf("/healthz = %d %s after recovery", code, body)
	}
}

// TestEtcdNoSpaceStaysUnhealthyWhileTheLiveDataFillsTheQuota: when the
// objects alone fill etcd, recovery neither disarms the alarm (the next
// write would raise it again, after every informer was made to relist) nor
// reports healthy: the apiserver stays unhealthy until objects are deleted.
func TestEtcdNoSpaceStaysUnhealthyWhileTheLiveDataFillsTheQuota(t *testing.T) {
	s := apiservertest.Start(t, apiservertest.Options{Metrics: true, Configure: func(c *server.Config) {
		c.EtcdQuotaBackendBytes = 8 << 20
		c.HealthCheckInterval = 100 * time.Millisecond
	}})
	// Write until etcd refuses every write for 5s in a row: whatever the
	// recovery could reclaim (compaction, defragmentation) is reclaimed,
	// and the live objects fill the quota.
	pods := s.Client.Pods()
	lastOK := time.Now()
	for i := 0; time.Since(lastOK) < 5*time.Second; i++ {
		if i == 5000 {
			t.Fatal("etcd never stayed full")
		}
		_, err := pods.Create(ctx(t), podWithEnv(fmt.Sprintf("p%d", i), 64<<10))
		if err == nil {
			lastOK = time.Now()
			continue
		}
		wantCode(t, err, codes.ResourceExhausted)
		time.Sleep(200 * time.Millisecond)
	}
	// No writes from here: nothing but the recovery could clear the alarm.
	for end := time.Now().Add(4 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if st := healthOf(s); st != healthpb.HealthCheckResponse_NOT_SERVING {
			code, body := healthz(t, s)
			t.Fatalf("health = %v (/healthz %d %s) while the live data fills etcd's quota, want NOT_SERVING", st, code, body)
		}
	}
	if code, body := healthz(t, s); code != http.StatusServiceUnavailable || !strings.Contains(body, "delete objects") {
		t.Errorf("/healthz = %d %q, want 503 saying to delete objects", code, body)
	}
}

// TestStreamsCountBeforeTheirRequestAndLogsCount: a client that opens
// streams and never sends their request, and log streams, hold slots of the
// per-client cap like watches do.
func TestStreamsCountBeforeTheirRequestAndLogsCount(t *testing.T) {
	s := apiservertest.Start(t, apiservertest.Options{Metrics: true, Configure: func(c *server.Config) { c.MaxWatchesPerClient = 3 }})
	conn := s.Client.Conn()
	// Two log streams and one watch, none of which ever sends its request.
	for _, m := range []string{"/kubelite.v1.PodService/Logs", "/kubelite.v1.PodService/Logs", "/kubelite.v1.PodService/Watch"} {
		st, err := conn.NewStream(ctx(t), &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, m)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = st.CloseSend() }()
	}
	waitFor(t, "the three streams to hold their slots", func() bool { return metricValue(t, s, "apiserver_long_running_streams") == 3 })
	w, err := s.Client.Pods().Watch(ctx(t), &v1.WatchRequest{})
	if err == nil {
		w.Stop()
	}
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("a fourth stream: %v, want ResourceExhausted (three slots are held)", err)
	}
}

// metricValue is the value of an unlabelled metric on /metrics (-1 if absent).
func metricValue(t *testing.T, s *apiservertest.Server, name string) float64 {
	resp, err := http.Get(s.MetricsURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			n, _ := strconv.ParseFloat(v, 64)
			return n
		}
	}
	return -1
}

// TestWatchOfAClientThatStopsReadingStillEnds: a client that stops reading
// fills the flow-control windows and blocks the server's sends; the watch
// must still end at its time limit and give its slot back.
func TestWatchOfAClientThatStopsReadingStillEnds(t *testing.T) {
	s := apiservertest.Start(t, apiservertest.Options{Configure: func(c *server.Config) {
		c.MaxWatchesPerClient = 1
		c.MinRequestTimeout = time.Second
	}})
	stalled, err := client.New(s.Addr, grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	// No deadline: only the server may end this watch.
	w, err := stalled.Pods().Watch(context.Background(), &v1.WatchRequest{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	// Far more than the windows hold; the stalled client reads none of it.
	for i := 0; i < 40; i++ {
		if _, err := s.Client.Pods().Create(ctx(t), podWithEnv(fmt.Sprintf("big-%d", i), 64<<10)); err != nil {
			t.Fatal(err)
		}
	}
	// The cap is one watch per client: a new watch of the same client goes
	// through once the stalled one has ended on the server.
	waitFor(t, "the stalled watch to end and free its slot", func() bool {
		c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		w2, err := stalled.Pods().Watch(c, &v1.WatchRequest{ResourceVersion: "0"})
		if err != nil {
			return false
		}
		w2.Stop()
		return true
	})
}

// TestPerClientWatchCapCoversEveryConnectionOfAHost: a client cannot get
// around the per-client cap by opening more connections.
func TestPerClientWatchCapCoversEveryConnectionOfAHost(t *testing.T) {
	s := apiservertest.Start(t, apiservertest.Options{Configure: func(c *server.Config) { c.MaxWatchesPerClient = 2 }})
	var open []*client.WatchStream[*v1.Pod]
	defer func() {
		for _, w := range open {
			w.Stop()
		}
	}()
	for i := 0; i < 3; i++ {
		c, err := client.New(s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		w, err := c.Pods().Watch(ctx(t), &v1.WatchRequest{ResourceVersion: "0"})
		if i < 2 {
			if err != nil {
				t.Fatalf("watch %d: %v", i+1, err)
			}
			open = append(open, w)
			continue
		}
		if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "client 127.0.0.1") {
			t.Fatalf("a third watch from the same host on a third connection: %v, want ResourceExhausted naming client 127.0.0.1", err)
		}
		if regexp.MustCompile(`127\.0\.0\.1:\d`).MatchString(err.Error()) {
			t.Errorf("the refusal names a connection (%v), want the host", err)
		}
	}
}
