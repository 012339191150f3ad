package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// compactRevKey records the last compaction so that several apiservers
// sharing one etcd compact once per interval (the Kubernetes apiserver's
// scheme: a compare-and-swap on the key's version).
const compactRevKey = "compact_rev_key"

// RunCompactor compacts etcd history every interval, keeping one interval of
// history: each tick compacts to the revision seen at the previous tick.
// afterCompact (if set) runs after every period, whichever apiserver
// compacted: each apiserver looks after its own etcd member.
func RunCompactor(ctx context.Context, client *clientv3.Client, interval time.Duration, afterCompact func(context.Context)) {
	if interval <= 0 {
		return
	}
	var version, rev int64
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		resp, err := client.Txn(ctx).
			If(clientv3.Compare(clientv3.Version(compactRevKey), "=", version)).
			Then(clientv3.OpPut(compactRevKey, "")).
			Else(clientv3.OpGet(compactRevKey)).Commit()
		if err != nil {
			slog.Warn("compactor: cannot record revision", "err", err)
			continue
		}
		curRev := resp.Header.Revision
		if !resp.Succeeded {
			// Another apiserver compacted: follow its version.
			if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
				version = kvs[0].Version
			}
		} else {
			version++
			if rev > 0 {
				// Physical: the call returns once the space is reclaimed, so
				// the defragmentation check below sees it as free.
				if _, err := client.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil {
					slog.Warn("compactor: compaction failed", "rev", rev, "err", err)
				} else {
					slog.Info("compacted etcd history", "rev", rev)
				}
			}
		}
		rev = curRev
		if afterCompact != nil {
			afterCompact(ctx)
		}
	}
}

// maintenanceLockKey is held, with a lease, by the apiserver that is
// defragmenting an etcd member: a member blocks reads and writes while it
// defragments, so members must go one at a time or the cluster loses its
// quorum.
const maintenanceLockKey = "kubelite/maintenance-lock"

// Member is one etcd member as maintenance sees it.
type Member struct {
	Name       string
	Status     func(ctx context.Context) (*clientv3.StatusResponse, error)
	Defragment func(ctx context.Context) error
}

// Timeouts of maintenance calls to one member.
const (
	statusTimeout = 10 * time.Second
	defragTimeout = 5 * time.Minute
)

// EndpointMembers are the members behind client URLs, reached through c
// (clientv3 dials the named endpoint for Status and Defragment).
func EndpointMembers(c *clientv3.Client, endpoints []string) []Member {
	ms := make([]Member, 0, len(endpoints))
	for _, ep := range endpoints {
		ms = append(ms, Member{
			Name: ep,
			Status: func(ctx context.Context) (*clientv3.StatusResponse, error) {
				ctx, cancel := context.WithTimeout(ctx, statusTimeout)
				defer cancel()
				return c.Status(ctx, ep)
			},
			Defragment: func(ctx context.Context) error {
				ctx, cancel := context.WithTimeout(ctx, defragTimeout)
				defer cancel()
				_, err := c.Defragment(ctx, ep)
				return err
			},
		})
	}
	return ms
}

// Maintenance keeps etcd's disk in shape: defragmentation after compaction
// when much of a member's database is free, one member at a time across
// the cluster, and recovery from the NOSPACE alarm.
type Maintenance struct {
	Client *clientv3.Client
	// Local are the members this apiserver defragments after each
	// compaction period: its own member when etcd is embedded (every
	// apiserver looks after its own), every member of an external cluster.
	Local func(ctx context.Context) ([]Member, error)
	// Cluster are all the members (NOSPACE recovery defragments each) and
	// a function that releases what listing them opened.
	Cluster func(ctx context.Context) ([]Member, func(), error)
	// DefragMinFreeBytes is how much free space (dbSize - dbSizeInUse) makes
	// a defragmentation worthwhile.
	DefragMinFreeBytes int64
	// Holder names this apiserver in the lock key.
	Holder string
	// LockTTL is the lock's lease (kept alive while held; default 30s): a
	// holder that dies frees the lock after it. LockWait is how long a
	// check waits for another apiserver's defragmentation (default 1m).
	LockTTL, LockWait time.Duration
	// TakeoverAfter: an apiserver that lost the NOSPACE race (another one
	// compacted first and recovers) recovers itself once the alarm has
	// lasted this long (the winner may have died; default 3m).
	TakeoverAfter time.Duration

	mu         sync.Mutex // guards ownedRev and defrags
	ownedRev   int64      // the head this apiserver compacted to in its last NOSPACE recovery
	defrags    int        // defragmentations this apiserver is running
	defragEnd  time.Time  // when the last one ended
	alarmSince time.Time  // when this apiserver first saw the current NOSPACE alarm
}

// WorthDefrag says whether defragmenting a member of dbSize bytes of which
// inUse are used pays off: enough free space, in bytes and as a share.
func WorthDefrag(dbSize, inUse, minFree int64) bool {
	free := dbSize - inUse
	return free > 0 && free >= minFree && free*4 >= dbSize
}

// defaultQuota is etcd's --quota-backend-bytes default.
const defaultQuota = 2 << 30

// spaceMargin is what a member's database must stay under for NOSPACE to
// count as recovered: 80% of the quota (etcd refuses a write that would
// take the database over the quota, so right below it is still full, and
// disarming there only has the next writes raise the alarm again).
func spaceMargin(quota int64) int64 {
	if quota <= 0 {
		quota = defaultQuota
	}
	return quota - quota/5
}

// WorthRecoveryDefrag says whether, under NOSPACE, defragmenting a member
// helps: it has free space and its live data fits under the quota with
// margin. Otherwise only deleting objects helps.
func WorthRecoveryDefrag(dbSize, inUse, quota int64) bool {
	return dbSize > inUse && inUse < spaceMargin(quota)
}

// Defragmenting says whether this apiserver is defragmenting a member now
// or finished within the last grace (a defragmenting member stalls reads
// and writes: health checks must not count that against etcd).
func (m *Maintenance) Defragmenting(grace time.Duration) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.defrags > 0 || (!m.defragEnd.IsZero() && time.Since(m.defragEnd) < grace)
}

func (m *Maintenance) lockTTL() time.Duration {
	if m.LockTTL > 0 {
		return m.LockTTL
	}
	return 30 * time.Second
}

// tryLock takes the cluster-wide maintenance lock if nobody holds it: a
// create-if-absent transaction on a key bound to a lease this apiserver
// keeps alive until release. (etcd refuses both under NOSPACE.)
func (m *Maintenance) tryLock(ctx context.Context) (release func(), ok bool, err error) {
	ttl := int64(m.lockTTL() / time.Second)
	if ttl < 1 {
		ttl = 1
	}
	lease, err := m.Client.Grant(ctx, ttl)
	if err != nil {
		return nil, false, err
	}
	revoke := func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_, _ = m.Client.Revoke(rctx, lease.ID)
	}
	resp, err := m.Client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(maintenanceLockKey), "=", 0)).
		Then(clientv3.OpPut(maintenanceLockKey, m.Holder, clientv3.WithLease(lease.ID))).
		Commit()
	if err != nil || !resp.Succeeded {
		revoke()
		return nil, false, err
	}
	kctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	ka, err := m.Client.KeepAlive(kctx, lease.ID)
	if err != nil {
		stop()
		revoke()
		return nil, false, err
	}
	go func() {
		for range ka {
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { stop(); revoke() }) }, true, nil
}

// withLock runs f holding the maintenance lock, waiting up to LockWait for
// another apiserver to release it; false if it never came.
func (m *Maintenance) withLock(ctx context.Context, f func(context.Context)) bool {
	wait := m.LockWait
	if wait <= 0 {
		wait = time.Minute
	}
	deadline := time.Now().Add(wait)
	for {
		release, ok, err := m.tryLock(ctx)
		if ok {
			defer release()
			f(ctx)
			return true
		}
		if errors.Is(err, rpctypes.ErrNoSpace) {
			// etcd refuses the lock under NOSPACE; the recovery handles it.
			return false
		}
		if err != nil {
			slog.Warn("etcd maintenance: cannot take the maintenance lock", "err", err)
		}
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(500*time.Millisecond + rand.N(time.Second)):
		}
	}
}

type memberStatus struct {
	Member
	st *clientv3.StatusResponse
}

// statuses reads each member's status, leaders last (a leader that
// defragments stalls the whole cluster's writes, and moving leadership is
// costly: Kubernetes' etcd operators defragment it last).
func statuses(ctx context.Context, members []Member) []memberStatus {
	var out []memberStatus
	for _, mb := range members {
		st, err := mb.Status(ctx)
		if err != nil {
			slog.Warn("etcd maintenance: cannot read status", "member", mb.Name, "err", err)
			continue
		}
		out = append(out, memberStatus{mb, st})
	}
	sort.SliceStable(out, func(i, j int) bool { return !isLeader(out[i].st) && isLeader(out[j].st) })
	return out
}

func isLeader(st *clientv3.StatusResponse) bool {
	return st.Header != nil && st.Leader != 0 && st.Header.MemberId == st.Leader
}

// defragOneAtATime defragments, in order, the members for which worth says
// so, waiting after each until it answers again with a leader; it stops at
// a member that does not come back, so no two are ever down together.
func (m *Maintenance) defragOneAtATime(ctx context.Context, members []Member, worth func(*clientv3.StatusResponse) bool) error {
	for _, ms := range statuses(ctx, members) {
		if !worth(ms.st) {
			continue
		}
		start := time.Now()
		m.mu.Lock()
		m.defrags++
		m.mu.Unlock()
		err := ms.Defragment(ctx)
		m.mu.Lock()
		m.defrags--
		m.defragEnd = time.Now()
		m.mu.Unlock()
		if err != nil {
			return fmt.Errorf("defragment etcd member %s: %w", ms.Name, err)
		}
		after, err := waitMemberHealthy(ctx, ms.Member)
		if err != nil {
			return fmt.Errorf("etcd member %s not healthy after defragmentation; the others wait: %w", ms.Name, err)
		}
		slog.Info("defragmented etcd", "member", ms.Name, "db_size_before", ms.st.DbSize, "db_size_after", after.DbSize, "took", time.Since(start))
	}
	return nil
}

// waitMemberHealthy polls a member's status until it answers with a leader.
func waitMemberHealthy(ctx context.Context, mb Member) (*clientv3.StatusResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		st, err := mb.Status(ctx)
		if err == nil && st.Leader != 0 {
			return st, nil
		}
		if err == nil {
			err = errors.New("no leader")
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// DefragIfWorthwhile defragments this apiserver's members (Local) whose
// free space is worth it, holding the cluster-wide maintenance lock so that
// the apiservers of one cluster never defragment two members at once.
func (m *Maintenance) DefragIfWorthwhile(ctx context.Context) {
	members, err := m.Local(ctx)
	if err != nil {
		slog.Warn("etcd maintenance: cannot list members", "err", err)
		return
	}
	worth := func(st *clientv3.StatusResponse) bool {
		return WorthDefrag(st.DbSize, st.DbSizeInUse, m.DefragMinFreeBytes)
	}
	needed := false
	for _, ms := range statuses(ctx, members) {
		needed = needed || worth(ms.st)
	}
	if !needed {
		return
	}
	ok := m.withLock(ctx, func(ctx context.Context) {
		// Statuses are read again under the lock.
		if err := m.defragOneAtATime(ctx, members, worth); err != nil {
			slog.Warn("etcd maintenance: defragmentation failed", "err", err)
		}
	})
	if !ok && ctx.Err() == nil {
		slog.Info("etcd maintenance: another apiserver holds the maintenance lock; defragmentation waits for the next period")
	}
}

// ErrStillFull says that NOSPACE recovery could not bring the database
// under the quota: the live objects fill it.
var ErrStillFull = errors.New("etcd's live data still exceeds its space quota: delete objects to recover")

// ErrRecoveredElsewhere says another apiserver runs the NOSPACE recovery.
var ErrRecoveredElsewhere = errors.New("another apiserver is recovering etcd's space")

// NoSpaceGone tells Maintenance that the NOSPACE alarm is no longer raised.
func (m *Maintenance) NoSpaceGone() {
	m.mu.Lock()
	m.alarmSince = time.Time{}
	m.mu.Unlock()
}

// RecoverSpace is what an operator does when etcd raises NOSPACE: compact
// history up to now, defragment the members (one at a time, leader last;
// after a fresh compaction every member with free pages, otherwise only
// where that helps), and disarm the alarm once every member's database is
// under the quota with margin. etcd refuses writes and lease grants under
// NOSPACE, so the maintenance lock cannot be taken: instead the apiservers
// race to compact to the head revision, which cannot move while writes are
// refused (deletes aside), and only the one whose compaction succeeds goes
// on (or, after TakeoverAfter, anyone: the winner may have died). It
// returns ErrStillFull when the live data alone fills the quota (the alarm
// stays: delete objects) and ErrRecoveredElsewhere when another apiserver
// won the race.
func (m *Maintenance) RecoverSpace(ctx context.Context) error {
	m.mu.Lock()
	if m.alarmSince.IsZero() {
		m.alarmSince = time.Now()
	}
	since, owned := m.alarmSince, m.ownedRev
	m.mu.Unlock()
	resp, err := m.Client.Get(ctx, compactRevKey)
	if err != nil {
		return err
	}
	head := resp.Header.Revision
	compacted := false
	if head != owned {
		_, err := m.Client.Compact(ctx, head, clientv3.WithCompactPhysical())
		switch {
		case err == nil:
			m.mu.Lock()
			m.ownedRev = head
			m.mu.Unlock()
			compacted = true
			slog.Info("etcd NOSPACE recovery: compacted history", "rev", head)
		case errors.Is(err, rpctypes.ErrCompacted):
			takeover := m.TakeoverAfter
			if takeover <= 0 {
				takeover = 3 * time.Minute
			}
			if time.Since(since) < takeover {
				return ErrRecoveredElsewhere
			}
			slog.Warn("etcd NOSPACE alarm outlasted another apiserver's recovery; taking over", "alarm_for", time.Since(since).Round(time.Second))
			compacted = true
		default:
			return fmt.Errorf("compact to %d: %w", head, err)
		}
	}
	members, done, err := m.Cluster(ctx)
	if err != nil {
		return err
	}
	defer done()
	// etcd's in-use figure lags one commit behind, and no commit follows a
	// compaction while writes are refused: after a fresh compaction only a
	// defragmentation tells what the live data takes. Without one (nothing
	// was written or deleted since the last attempt), defragment only where
	// it helps.
	if err := m.defragOneAtATime(ctx, members, func(st *clientv3.StatusResponse) bool {
		if compacted {
			return st.DbSize > st.DbSizeInUse
		}
		return WorthRecoveryDefrag(st.DbSize, st.DbSizeInUse, st.DbSizeQuota)
	}); err != nil {
		return err
	}
	for _, ms := range statuses(ctx, members) {
		if ms.st.DbSize >= spaceMargin(ms.st.DbSizeQuota) {
			return fmt.Errorf("%w (member %s: database %d bytes, %d in use, quota %d)", ErrStillFull, ms.Name, ms.st.DbSize, ms.st.DbSizeInUse, ms.st.DbSizeQuota)
		}
	}
	alarms, err := m.Client.AlarmList(ctx)
	if err != nil {
		return err
	}
	for _, a := range alarms.Alarms {
		if a.Alarm != etcdserverpb.AlarmType_NOSPACE {
			continue
		}
		if _, err := m.Client.AlarmDisarm(ctx, (*clientv3.AlarmMember)(a)); err != nil {
			return fmt.Errorf("disarm NOSPACE alarm of member %x: %w", a.MemberID, err)
		}
	}
	slog.Info("etcd NOSPACE alarm handled: compacted, defragmented and disarmed", "rev", head)
	return nil
}
