// Package cmdutil holds what every kubelite binary's main does the same way:
// exit codes, logging, and the signal context.
package cmdutil

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// Exit codes shared by the binaries: bad arguments differ from failures.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// SetupLogging makes log/slog write text lines to stderr, tagged with the
// component, at the given level.
func SetupLogging(component, level string) error {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return fmt.Errorf("--log-level %q: expected debug, info, warn or error", level)
	}
	h := slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})
	slog.SetDefault(slog.New(h).With("component", component))
	return nil
}

// SignalContext is cancelled on the first SIGINT or SIGTERM; a second one
// exits at once.
func SignalContext() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-ch
		cancel()
		<-ch
		os.Exit(ExitFailure)
	}()
	return ctx
}
