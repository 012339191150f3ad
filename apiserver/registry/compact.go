package registry

import (
	"context"
	"log/slog"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// compactRevKey records the last compaction so that several apiservers
// sharing one etcd compact once per interval (the Kubernetes apiserver's
// scheme: a compare-and-swap on the key's version).
const compactRevKey = "compact_rev_key"

// RunCompactor compacts etcd history every interval, keeping one interval of
// history: each tick compacts to the revision seen at the previous tick.
func RunCompactor(ctx context.Context, client *clientv3.Client, interval time.Duration) {
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
			}
		}
		rev = curRev
	}
}
