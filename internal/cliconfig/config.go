// Package cliconfig finds the apiserver and etcd for the CLIs: a flag, then
// an environment variable, then the config file scripts/up.sh writes.
package cliconfig

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"sigs.k8s.io/yaml"
)

// Environment variables the CLIs read.
const (
	EnvConfig = "KUBELITE_CONFIG" // the config file's path
	EnvServer = "KUBELITE_SERVER" // the apiserver's host:port
	EnvEtcd   = "ETCDCTL_ENDPOINTS"
)

// DefaultServer is used when nothing else names an apiserver.
const DefaultServer = "127.0.0.1:6443"

// File is the config file's content.
type File struct {
	// Server is the apiserver's gRPC address (host:port, or several comma-separated).
	Server string `json:"server"`
	// EtcdEndpoints are the etcd client endpoints, for etcdctl-lite.
	EtcdEndpoints []string `json:"etcdEndpoints,omitempty"`
	// Namespace is the default namespace.
	Namespace string `json:"namespace,omitempty"`
}

// Path is the config file's path: $KUBELITE_CONFIG, else ~/.kubelite/config.
func Path() string {
	if p := os.Getenv(EnvConfig); p != "" {
		return p
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ".kubelite/config"
	}
	return filepath.Join(home, ".kubelite", "config")
}

// Load reads the config file; a missing file gives an empty File and ok=false.
func Load() (f File, ok bool, err error) {
	p := Path()
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return File{}, false, nil
	}
	if err != nil {
		return File{}, false, err
	}
	if err := yaml.UnmarshalStrict(b, &f); err != nil {
		return File{}, false, fmt.Errorf("config file %s: %w", p, err)
	}
	return f, true, nil
}

// Write stores f at path, creating the folder.
func Write(path string, f File) error {
	b, err := yaml.Marshal(f)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// Server resolves the apiserver address and says where it came from.
func Server(flagValue string) (addr, source string, err error) {
	if flagValue != "" {
		return flagValue, "--server", nil
	}
	if v := os.Getenv(EnvServer); v != "" {
		return v, "$" + EnvServer, nil
	}
	f, ok, err := Load()
	if err != nil {
		return "", "", err
	}
	if ok && f.Server != "" {
		return f.Server, "config file " + Path(), nil
	}
	return DefaultServer, fmt.Sprintf("the default (no --server, no $%s, no config file at %s)", EnvServer, Path()), nil
}
