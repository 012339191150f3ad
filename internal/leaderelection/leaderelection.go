// Package leaderelection elects one leader among replicas through a Lease
// object held via the apiserver, with client-go's rules: a candidate takes a
// lease whose holder has not renewed it for LeaseDuration (measured on the
// candidate's own clock, from when it last saw the lease change), the leader
// renews every RetryPeriod and steps down if it cannot renew for
// RenewDeadline. Writes are compare-and-swap on resourceVersion, so two
// candidates never both win.
package leaderelection

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kubelite/kubelite/internal/client"
	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

// Config configures an election.
type Config struct {
	Client    *client.Client
	Namespace string // of the Lease, e.g. kube-system
	Name      string // of the Lease, e.g. kube-scheduler
	Identity  string // this candidate, unique among replicas

	LeaseDuration time.Duration // 15 s in Kubernetes
	RenewDeadline time.Duration // 10 s
	RetryPeriod   time.Duration // 2 s

	// OnStartedLeading runs while this candidate leads; its context ends
	// when leadership is lost or Run's context ends.
	OnStartedLeading func(ctx context.Context)
	// OnNewLeader is told each new leader's identity (optional).
	OnNewLeader func(identity string)
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Validate checks the timing rules client-go enforces.
func (c *Config) Validate() error {
	switch {
	case c.Client == nil || c.Name == "" || c.Namespace == "" || c.Identity == "":
		return errors.New("leader election: client, lease namespace/name and identity are required")
	case c.LeaseDuration <= c.RenewDeadline:
		return fmt.Errorf("leader election: lease duration %v must be greater than renew deadline %v", c.LeaseDuration, c.RenewDeadline)
	case c.RenewDeadline <= c.RetryPeriod:
		return fmt.Errorf("leader election: renew deadline %v must be greater than retry period %v", c.RenewDeadline, c.RetryPeriod)
	case c.OnStartedLeading == nil:
		return errors.New("leader election: OnStartedLeading is required")
	}
	return nil
}

// Elector runs one candidate.
type Elector struct {
	cfg Config

	observed     *v1.Lease // the lease as last read
	observedTime time.Time // when it last changed, on our clock
	leader       string
}

// New returns an elector.
func New(cfg Config) (*Elector, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Elector{cfg: cfg}, nil
}

// Run campaigns until elected, leads until leadership is lost, and returns.
// It returns an error when leadership was lost (callers usually exit, as
// Kubernetes components do) and nil when ctx ended.
func (e *Elector) Run(ctx context.Context) error {
	if !e.acquire(ctx) {
		return nil
	}
	lctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.cfg.OnStartedLeading(lctx)
	}()
	err := e.renew(ctx)
	cancel()
	<-done
	if ctx.Err() != nil {
		e.release()
		return nil
	}
	return err
}

func (e *Elector) acquire(ctx context.Context) bool {
	slog.Info("leader election: campaigning", "lease", e.cfg.Namespace+"/"+e.cfg.Name, "identity", e.cfg.Identity)
	for {
		if e.tryAcquireOrRenew(ctx) {
			slog.Info("leader election: acquired", "lease", e.cfg.Namespace+"/"+e.cfg.Name, "identity", e.cfg.Identity)
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(e.cfg.RetryPeriod):
		}
	}
}

// renew keeps the lease; it returns when a renewal has not succeeded for
// RenewDeadline, or ctx ended.
func (e *Elector) renew(ctx context.Context) error {
	last := e.cfg.Now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(e.cfg.RetryPeriod):
		}
		if e.tryAcquireOrRenew(ctx) {
			last = e.cfg.Now()
			continue
		}
		if e.cfg.Now().Sub(last) > e.cfg.RenewDeadline || e.leader != e.cfg.Identity {
			slog.Error("leader election: lost", "lease", e.cfg.Namespace+"/"+e.cfg.Name, "identity", e.cfg.Identity, "leader", e.leader)
			return fmt.Errorf("leadership of %s/%s lost", e.cfg.Namespace, e.cfg.Name)
		}
	}
}

// tryAcquireOrRenew is client-go's: create the lease, or take it if it
// expired, or renew it if ours.
func (e *Elector) tryAcquireOrRenew(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.RetryPeriod)
	defer cancel()
	now := e.cfg.Now()
	leases := e.cfg.Client.Leases()
	id := e.cfg.Identity
	dur := int32(e.cfg.LeaseDuration / time.Second)
	cur, err := leases.Get(ctx, e.cfg.Namespace, e.cfg.Name)
	if client.IsNotFound(err) {
		zero := int32(0)
		l := &v1.Lease{Metadata: &v1.ObjectMeta{Name: e.cfg.Name, Namespace: e.cfg.Namespace},
			Spec: &v1.LeaseSpec{HolderIdentity: &id, LeaseDurationSeconds: &dur, AcquireTime: timestamppb.New(now), RenewTime: timestamppb.New(now), LeaseTransitions: &zero}}
		created, err := leases.Create(ctx, l)
		if err != nil {
			return false
		}
		e.observe(created, now)
		return true
	}
	if err != nil {
		return false
	}
	if e.observed == nil || e.observed.Metadata.ResourceVersion != cur.Metadata.ResourceVersion {
		e.observe(cur, now)
	}
	holder := cur.GetSpec().GetHolderIdentity()
	held := holder != "" && holder != id
	expired := e.observedTime.Add(time.Duration(cur.GetSpec().GetLeaseDurationSeconds()) * time.Second).Before(now)
	if held && !expired {
		return false
	}
	next := proto.Clone(cur).(*v1.Lease)
	if next.Spec == nil {
		next.Spec = &v1.LeaseSpec{}
	}
	if holder != id {
		next.Spec.AcquireTime = timestamppb.New(now)
		t := next.Spec.GetLeaseTransitions()
		if holder != "" {
			t++
		}
		next.Spec.LeaseTransitions = &t
	}
	next.Spec.HolderIdentity = &id
	next.Spec.LeaseDurationSeconds = &dur
	next.Spec.RenewTime = timestamppb.New(now)
	updated, err := leases.Update(ctx, next) // CAS on resourceVersion
	if err != nil {
		return false
	}
	e.observe(updated, now)
	return true
}

func (e *Elector) observe(l *v1.Lease, now time.Time) {
	e.observed, e.observedTime = l, now
	h := l.GetSpec().GetHolderIdentity()
	if h != e.leader {
		e.leader = h
		if e.cfg.OnNewLeader != nil && h != "" {
			e.cfg.OnNewLeader(h)
		}
	}
}

// release gives the lease up on a clean exit, so another replica takes
// over at once instead of after LeaseDuration.
func (e *Elector) release() {
	if e.observed == nil || e.leader != e.cfg.Identity {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.RetryPeriod)
	defer cancel()
	l := proto.Clone(e.observed).(*v1.Lease)
	empty := ""
	one := int32(1)
	l.Spec.HolderIdentity = &empty
	l.Spec.LeaseDurationSeconds = &one
	l.Spec.RenewTime = timestamppb.New(e.cfg.Now())
	if _, err := e.cfg.Client.Leases().Update(ctx, l); err == nil {
		slog.Info("leader election: released", "lease", e.cfg.Namespace+"/"+e.cfg.Name, "identity", e.cfg.Identity)
	}
}
