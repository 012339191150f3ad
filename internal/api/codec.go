package api

import (
	"bytes"
	"fmt"

	"google.golang.org/protobuf/proto"
)

// magic starts every stored value: "kl" + NUL + format version 1, then one
// byte of kind-name length, the kind name, and the object's protobuf bytes.
// It plays the role of Kubernetes' "k8s\x00" header: a reader such as
// etcdctl-lite learns the type without knowing the key layout.
var magic = []byte{'k', 'l', 0, 1}

// Encode serialises an object for storage.
func Encode(o Object) ([]byte, error) {
	k := KindOf(o)
	if k == nil {
		return nil, fmt.Errorf("encode: %s is not a stored kind", o.ProtoReflect().Descriptor().FullName())
	}
	raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(o)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", k.Kind, err)
	}
	buf := make([]byte, 0, len(magic)+1+len(k.Kind)+len(raw))
	buf = append(buf, magic...)
	buf = append(buf, byte(len(k.Kind)))
	buf = append(buf, k.Kind...)
	return append(buf, raw...), nil
}

// IsEncoded reports whether b starts with kubelite's header.
func IsEncoded(b []byte) bool { return bytes.HasPrefix(b, magic) }

// Decode parses a stored value written by Encode.
func Decode(b []byte) (Object, error) {
	if !IsEncoded(b) || len(b) < len(magic)+1 {
		return nil, fmt.Errorf("decode: value does not start with the kubelite header")
	}
	n := int(b[len(magic)])
	start := len(magic) + 1
	if len(b) < start+n {
		return nil, fmt.Errorf("decode: truncated header")
	}
	name := string(b[start : start+n])
	k, err := Lookup(name)
	if err != nil || k.Kind != name {
		return nil, fmt.Errorf("decode: unknown kind %q", name)
	}
	o := k.NewEmpty()
	if err := proto.Unmarshal(b[start+n:], o); err != nil {
		return nil, fmt.Errorf("decode %s: %w", name, err)
	}
	return o, nil
}
