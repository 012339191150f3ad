package registry_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"

	"github.com/kubelite/kubelite/apiserver/apiservertest"
	"github.com/kubelite/kubelite/apiserver/registry"
	"github.com/kubelite/kubelite/apiserver/server"
)

func startEtcd(t *testing.T) *clientv3.Client {
	t.Helper()
	e, err := server.StartEmbeddedEtcd(t.TempDir(), fmt.Sprintf("http://127.0.0.1:%d", apiservertest.FreePort(t)), fmt.Sprintf("http://127.0.0.1:%d", apiservertest.FreePort(t)))
	if err != nil {
		t.Fatal(err)
	}
	c := v3client.New(e.Server)
	t.Cleanup(func() { c.Close(); e.Close() })
	return c
}

// fakeCluster is a cluster of members whose status and defragmentation are
// simulated; it records how many defragment at once and in which order.
type fakeCluster struct {
	mu        sync.Mutex
	size      map[int]int64 // member id → db size
	inUse     int64
	quota     int64
	leader    int
	active    atomic.Int32
	maxActive atomic.Int32
	order     []int
}

func newFakeCluster(n, leader int, size, inUse, quota int64) *fakeCluster {
	f := &fakeCluster{size: map[int]int64{}, inUse: inUse, quota: quota, leader: leader}
	for i := 1; i <= n; i++ {
		f.size[i] = size
	}
	return f
}

func (f *fakeCluster) member(id int) registry.Member {
	return registry.Member{
		Name: fmt.Sprintf("m%d", id),
		Status: func(context.Context) (*clientv3.StatusResponse, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			return &clientv3.StatusResponse{Header: &etcdserverpb.ResponseHeader{MemberId: uint64(id)}, Leader: uint64(f.leader),
				DbSize: f.size[id], DbSizeInUse: f.inUse, DbSizeQuota: f.quota}, nil
		},
		Defragment: func(context.Context) error {
			n := f.active.Add(1)
			defer f.active.Add(-1)
			for {
				m := f.maxActive.Load()
				if n <= m || f.maxActive.CompareAndSwap(m, n) {
					break
				}
			}
			time.Sleep(200 * time.Millisecond)
			f.mu.Lock()
			f.size[id] = f.inUse
			f.order = append(f.order, id)
			f.mu.Unlock()
			return nil
		},
	}
}

func (f *fakeCluster) members() []registry.Member {
	var ms []registry.Member
	for i := 1; i <= len(f.size); i++ {
		ms = append(ms, f.member(i))
	}
	return ms
}

// TestApiserversDefragmentTheirMembersOneAtATime: three apiservers, each
// embedding one member of a cluster, check their own member after a
// compaction period at the same moment; each defragments its member, but
// never two at once (the cluster would lose its quorum).
func TestApiserversDefragmentTheirMembersOneAtATime(t *testing.T) {
	c := startEtcd(t)
	f := newFakeCluster(3, 1, 200<<20, 20<<20, 2<<30)
	var wg sync.WaitGroup
	for id := 1; id <= 3; id++ {
		m := &registry.Maintenance{Client: c, Holder: fmt.Sprintf("apiserver-%d", id), DefragMinFreeBytes: 32 << 20, LockWait: 30 * time.Second,
			Local: func(context.Context) ([]registry.Member, error) { return []registry.Member{f.member(id)}, nil }}
		wg.Add(1)
		go func() { defer wg.Done(); m.DefragIfWorthwhile(t.Context()) }()
	}
	wg.Wait()
	if got := f.maxActive.Load(); got != 1 {
		t.Errorf("%d members defragmented at once, want 1", got)
	}
	if len(f.order) != 3 {
		t.Errorf("defragmented members %v, want each of the 3 once", f.order)
	}
	// The lock is released: a later check takes it at once.
	m := &registry.Maintenance{Client: c, Holder: "later", DefragMinFreeBytes: 32 << 20, LockWait: time.Millisecond,
		Local: func(context.Context) ([]registry.Member, error) { return []registry.Member{f.member(1)}, nil }}
	f.mu.Lock()
	f.size[1] = 200 << 20
	f.mu.Unlock()
	m.DefragIfWorthwhile(t.Context())
	if len(f.order) != 4 {
		t.Errorf("the lock was not released: defragmented %v", f.order)
	}
}

// TestExternalClusterIsDefragmentedLeaderLast: an apiserver in front of an
// external cluster defragments its members one at a time, the leader last.
func TestExternalClusterIsDefragmentedLeaderLast(t *testing.T) {
	c := startEtcd(t)
	f := newFakeCluster(3, 2, 200<<20, 20<<20, 2<<30)
	m := &registry.Maintenance{Client: c, Holder: "a", DefragMinFreeBytes: 32 << 20,
		Local: func(context.Context) ([]registry.Member, error) { return f.members(), nil }}
	m.DefragIfWorthwhile(t.Context())
	if fmt.Sprint(f.order) != "[1 3 2]" {
		t.Errorf("defragmentation order %v, want [1 3 2] (leader 2 last)", f.order)
	}
}

// TestNoSpaceRecoveryRunsOnceAcrossApiservers: on NOSPACE every apiserver
// of a cluster sees the alarm at once; one recovers (defragmenting the
// members one at a time), the others stand aside.
func TestNoSpaceRecoveryRunsOnceAcrossApiservers(t *testing.T) {
	c := startEtcd(t)
	if _, err := c.Put(t.Context(), "k", "v"); err != nil {
		t.Fatal(err)
	}
	f := newFakeCluster(3, 3, 9<<20, 1<<20, 10<<20)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range 3 {
		m := &registry.Maintenance{Client: c, Holder: fmt.Sprintf("apiserver-%d", i),
			Cluster: func(context.Context) ([]registry.Member, func(), error) { return f.members(), func() {}, nil }}
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = m.RecoverSpace(t.Context()) }()
	}
	wg.Wait()
	ok, elsewhere := 0, 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, registry.ErrRecoveredElsewhere):
			elsewhere++
		default:
			t.Errorf("RecoverSpace: %v", err)
		}
	}
	if ok != 1 || elsewhere != 2 {
		t.Errorf("%d recovered and %d stood aside, want 1 and 2: %v", ok, elsewhere, errs)
	}
	if got := f.maxActive.Load(); got != 1 {
		t.Errorf("%d members defragmented at once, want 1", got)
	}
	if fmt.Sprint(f.order) != "[1 2 3]" {
		t.Errorf("defragmentation order %v, want [1 2 3] (each once, leader 3 last)", f.order)
	}
}

// TestNoSpaceRecoveryWithLiveDataOverTheQuota: when the live data fills
// the quota, recovery never disarms (the next write would raise the alarm
// again) and, once it has defragmented after a compaction, does not
// defragment again until something was written or deleted.
func TestNoSpaceRecoveryWithLiveDataOverTheQuota(t *testing.T) {
	c := startEtcd(t)
	if _, err := c.Put(t.Context(), "k", "v"); err != nil {
		t.Fatal(err)
	}
	f := newFakeCluster(1, 1, 10<<20, 19<<19, 10<<20) // 9.5 MiB live of a 10 MiB quota
	m := &registry.Maintenance{Client: c, Holder: "a",
		Cluster: func(context.Context) ([]registry.Member, func(), error) { return f.members(), func() {}, nil }}
	for i := 0; i < 3; i++ {
		if err := m.RecoverSpace(t.Context()); !errors.Is(err, registry.ErrStillFull) {
			t.Fatalf("RecoverSpace #%d = %v, want ErrStillFull", i+1, err)
		}
	}
	if len(f.order) != 1 {
		t.Errorf("defragmented %d times (%v), want once, after the first compaction", len(f.order), f.order)
	}
}
