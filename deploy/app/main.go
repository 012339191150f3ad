// Command kubelite-app is a small workload for examples and tests: it can
// sleep, serve HTTP with a readiness path, trap or ignore SIGTERM, exit with
// a code, use memory and append to a file. It is static, so the same binary
// runs on the host and in FROM-scratch images.
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	serve := flag.String("serve", "", "serve HTTP on this address, e.g. :8080 (/ says hello, /ready is 200 once ready, /healthz is 200)")
	readyAfter := flag.Duration("ready-after", 0, "report /ready as 503 for this long after start")
	onTerm := flag.String("on-term", "exit", "on SIGTERM: exit (0), ignore, or delay:DURATION (exit 0 after it)")
	exitAfter := flag.Duration("exit-after", 0, "exit after this long (0: run until signalled)")
	exitCode := flag.Int("exit-code", 0, "exit code for --exit-after")
	alloc := flag.String("alloc", "", "allocate and touch this much memory, e.g. 64Mi")
	appendTo := flag.String("append", "", "append a line to this file every --every")
	every := flag.Duration("every", time.Second, "interval for --append and the log line")
	reportStart := flag.String("report-start", "", "append 'started <unix-nanos> <pid> <pod>' to this file at start")
	reportTerm := flag.String("report-term", "", "append 'term <unix-nanos> <pid> <pod>' to this file on SIGTERM")
	check := flag.String("check", "", "probe mode: GET this path on the port in ./port (written by --serve) and exit 0 if it answers 2xx/3xx")
	flag.Parse()
	if *check != "" {
		os.Exit(probe(*check))
	}
	// Catch SIGTERM before telling anyone we started: a signal that came
	// between the two would kill us the default way.
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	start := time.Now()
	name := os.Getenv("POD_NAME")
	report(*reportStart, "started", start)
	fmt.Printf("kubelite-app %s: pid %d started\n", name, os.Getpid())

	if *alloc != "" {
		n, err := parseSize(*alloc)
		if err != nil {
			fmt.Fprintln(os.Stderr, "--alloc:", err)
			os.Exit(2)
		}
		buf := make([]byte, n)
		for i := 0; i < len(buf); i += 4096 {
			buf[i] = 1
		}
		fmt.Printf("allocated %s\n", *alloc)
		defer func() { _ = buf[0] }()
	}
	if *serve != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprintf(w, "hello from %s (pid %d)\n", name, os.Getpid())
		})
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
		mux.HandleFunc("/ready", func(w http.ResponseWriter, _ *http.Request) {
			if time.Since(start) < *readyAfter {
				http.Error(w, "not ready yet", http.StatusServiceUnavailable)
				return
			}
			fmt.Fprintln(w, "ready")
		})
		// Pods share the host's network here: with port 0 each server picks
		// a free port and writes it to ./port (its pod folder) for --check.
		l, err := net.Listen("tcp", *serve)
		if err != nil {
			fmt.Fprintln(os.Stderr, "serve:", err)
			os.Exit(1)
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = os.WriteFile("port.tmp", []byte(strconv.Itoa(port)), 0o644)
		_ = os.Rename("port.tmp", "port")
		fmt.Printf("serving HTTP on %s\n", l.Addr())
		go func() {
			if err := http.Serve(l, mux); err != nil {
				fmt.Fprintln(os.Stderr, "serve:", err)
				os.Exit(1)
			}
		}()
	}
	var exitTimer <-chan time.Time
	if *exitAfter > 0 {
		exitTimer = time.After(*exitAfter)
	}
	tick := time.NewTicker(*every)
	for {
		select {
		case <-term:
			report(*reportTerm, "term", time.Now())
			switch {
			case *onTerm == "ignore":
				fmt.Println("got SIGTERM, ignoring it")
				continue
			case strings.HasPrefix(*onTerm, "delay:"):
				d, _ := time.ParseDuration(strings.TrimPrefix(*onTerm, "delay:"))
				fmt.Printf("got SIGTERM, exiting in %s\n", d)
				time.Sleep(d)
			default:
				fmt.Println("got SIGTERM, exiting")
			}
			os.Exit(0)
		case <-exitTimer:
			fmt.Printf("exiting with code %d\n", *exitCode)
			os.Exit(*exitCode)
		case t := <-tick.C:
			if *appendTo != "" {
				f, err := os.OpenFile(*appendTo, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
				if err == nil {
					fmt.Fprintf(f, "%s %s\n", t.UTC().Format(time.RFC3339), name)
					f.Close()
				}
			}
		}
	}
}

// report appends "<what> <unix-nanos> <pid> <pod>" to path, if set.
func report(path, what string, t time.Time) {
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return
	}
	fmt.Fprintf(f, "%s %d %d %s\n", what, t.UnixNano(), os.Getpid(), os.Getenv("POD_NAME"))
	f.Close()
}

// probe GETs path on 127.0.0.1:<./port>.
func probe(path string) int {
	b, err := os.ReadFile("port")
	if err != nil {
		fmt.Fprintln(os.Stderr, "no ./port yet:", err)
		return 1
	}
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get("http://127.0.0.1:" + strings.TrimSpace(string(b)) + path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode >= 400 {
		fmt.Fprintln(os.Stderr, resp.Status)
		return 1
	}
	return 0
}

// parseSize reads "64Mi", "1Gi", "512Ki" or a byte count. (Kept free of
// apimachinery: this binary also runs as every probe, so it starts lean.)
func parseSize(s string) (int64, error) {
	mult := int64(1)
	for suffix, m := range map[string]int64{"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30} {
		if v, ok := strings.CutSuffix(s, suffix); ok {
			s, mult = v, m
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q: expected a size such as 64Mi", s)
	}
	return n * mult, nil
}
