// Package registry stores kubelite objects in etcd: keys, revisions,
// compare-and-swap writes, graceful deletion, and one etcd watch per
// resource fanned out to many watchers.
package registry

import (
	"errors"
	"fmt"
	"strings"

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
	ErrGone          = errors.New("watch closed")
)

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
