package cmd

import (
	"fmt"
	"time"

	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }

// eventTime is when an event last happened.
func eventTime(e *v1.Event) time.Time {
	if e.LastTimestamp != nil {
		return e.LastTimestamp.AsTime()
	}
	if e.FirstTimestamp != nil {
		return e.FirstTimestamp.AsTime()
	}
	return e.GetMetadata().GetCreationTimestamp().AsTime()
}
