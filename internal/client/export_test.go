package client

import (
	"time"

	"github.com/kubelite/kubelite/internal/api"
)

// SetOnSleep makes the informer report every back-off delay to f.
func SetOnSleep[T api.Object](i *Informer[T], f func(time.Duration)) { i.onSleep = f }
