package client

import (
	"k8s.io/client-go/util/workqueue"
)

// Queue is the rate-limited work queue controllers use: a key is processed
// by one worker at a time, duplicates coalesce, failures back off per key.
// It is client-go's workqueue (the one every Kubernetes controller uses).
type Queue = workqueue.TypedRateLimitingInterface[string]

// NewQueue returns a queue with client-go's default controller rate limiter
// (per-key exponential back-off 5ms..1000s, plus an overall 10 qps/100 burst
// bucket).
func NewQueue(name string) Queue {
	return workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.DefaultTypedControllerRateLimiter[string](),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: name},
	)
}
