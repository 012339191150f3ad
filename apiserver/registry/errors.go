// Package registry stores kubelite objects in etcd: keys, revisions,
// compare-and-swap writes, graceful deletion, and one etcd watch per
// resource fanned out to many watchers.
package registry

import (
	"errors"
	"fmt"
	"strings"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Sentinels: the reasons a storage call fails. The gRPC layer maps them to
// codes once (see apiserver/server).
var (
	ErrNotFound      = errors.New("not found")
	ErrAlreadyExists = errors.New("already exists")
	ErrConflict      = errors.New("conflict")
	ErrInvalid       = errors.New("invalid")
	ErrBadRequest    = errors.New("bad request")
	ErrTooOld        = errors.New("too old resource version")
	ErrTooLarge      = errors.New("too large resource version")
	ErrGone          = errors.New("watch closed")
	ErrCorrupt       = errors.New("stored value cannot be decoded")
	ErrNoSpace       = errors.New("etcd space exceeded")
)

// FromEtcd turns the etcd errors a client can act on into storage errors
// with a message that says what to do; others pass through.
func FromEtcd(err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	desc := rpctypes.ErrorDesc(err)
	switch {
	case strings.Contains(desc, rpctypes.ErrorDesc(rpctypes.ErrGRPCNoSpace)):
		return newError(ErrNoSpace, "etcd space exceeded (etcd raised its NOSPACE alarm): writes are refused until objects are deleted; the apiserver then compacts, defragments and disarms the alarm")
	case strings.Contains(desc, rpctypes.ErrorDesc(rpctypes.ErrGRPCRequestTooLarge)):
		return newError(ErrInvalid, "the request is larger than etcd accepts (etcdserver: request is too large)")
	}
	return err
}

// Error is a storage error with a user-facing message and a sentinel reason.
type Error struct {
	Reason error
	Msg    string
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Reason }

func newError(reason error, format string, args ...any) error {
	return &Error{Reason: reason, Msg: fmt.Sprintf(format, args...)}
}

func notFound(resource, name string) error {
	return newError(ErrNotFound, "%s %q not found", resource, name)
}

func conflict(resource, name string) error {
	return newError(ErrConflict, "Operation cannot be fulfilled on %s %q: the object has been modified; please apply your changes to the latest version and try again", resource, name)
}

func invalid(kind, name string, errs field.ErrorList) error {
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return newError(ErrInvalid, "%s %q is invalid: [%s]", kind, name, strings.Join(msgs, ", "))
}
