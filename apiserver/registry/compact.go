package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
// afterCompact (if set) runs after each successful compaction.
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
			rev = curRev
			continue
		}
		version++
		if rev > 0 {
			if _, err := client.Compact(ctx, rev); err != nil {
				slog.Warn("compactor: compaction failed", "rev", rev, "err", err)
			} else {
				slog.Info("compacted etcd history", "rev", rev)
				if afterCompact != nil {
					afterCompact(ctx)
				}
			}
		}
		rev = curRev
	}
}

// Maintenance keeps etcd's disk in shape: defragmentation after compaction
// when much of the database is free, and recovery from the NOSPACE alarm.
type Maintenance struct {
	Client *clientv3.Client
	// Endpoints are the members to defragment, one at a time (defragmenting
	// blocks a member's reads and writes while it runs).
	Endpoints []string
	// DefragMinFreeBytes is how much free space (dbSize - dbSizeInUse) makes
	// a defragmentation worthwhile.
	DefragMinFreeBytes int64
	// Defragment defragments one member; Client.Defragment when nil (the
	// in-process client of an embedded etcd cannot: the caller passes the
	// server's own Defragment).
	Defragment func(ctx context.Context, endpoint string) error
}

// WorthDefrag says whether defragmenting a member of dbSize bytes of which
// inUse are used pays off: enough free space, in bytes and as a share.
func WorthDefrag(dbSize, inUse, minFree int64) bool {
	free := dbSize - inUse
	return free > 0 && free >= minFree && free*4 >= dbSize
}

// DefragIfWorthwhile defragments each member whose free space is worth it.
func (m *Maintenance) DefragIfWorthwhile(ctx context.Context) {
	for _, ep := range m.Endpoints {
		st, err := m.Client.Status(ctx, ep)
		if err != nil {
			slog.Warn("etcd maintenance: cannot read status", "endpoint", ep, "err", err)
			continue
		}
		if !WorthDefrag(st.DbSize, st.DbSizeInUse, m.DefragMinFreeBytes) {
			continue
		}
		m.defrag(ctx, ep, st.DbSize)
	}
}

func (m *Maintenance) defrag(ctx context.Context, ep string, before int64) {
	start := time.Now()
	defrag := m.Defragment
	if defrag == nil {
		defrag = func(ctx context.Context, ep string) error { _, err := m.Client.Defragment(ctx, ep); return err }
	}
	if err := defrag(ctx, ep); err != nil {
		slog.Warn("etcd maintenance: defragmentation failed", "endpoint", ep, "err", err)
		return
	}
	after := int64(-1)
	if st, err := m.Client.Status(ctx, ep); err == nil {
		after = st.DbSize
	}
	slog.Info("defragmented etcd", "endpoint", ep, "db_size_before", before, "db_size_after", after, "took", time.Since(start))
}

// RecoverSpace is what an operator does when etcd raises NOSPACE: compact
// history up to now, defragment every member, and disarm the alarm. If the
// live data alone still exceeds the quota, etcd raises the alarm again at
// the next write; the caller retries later (after objects are deleted).
func (m *Maintenance) RecoverSpace(ctx context.Context) error {
	resp, err := m.Client.Get(ctx, compactRevKey)
	if err != nil {
		return err
	}
	if _, err := m.Client.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil && !errors.Is(err, rpctypes.ErrCompacted) {
		return fmt.Errorf("compact to %d: %w", resp.Header.Revision, err)
	}
	for _, ep := range m.Endpoints {
		before := int64(-1)
		if st, err := m.Client.Status(ctx, ep); err == nil {
			before = st.DbSize
		}
		m.defrag(ctx, ep, before)
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
	slog.Info("etcd NOSPACE alarm handled: compacted, defragmented and disarmed", "rev", resp.Header.Revision)
	return nil
}
