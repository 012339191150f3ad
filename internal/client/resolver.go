package client

import (
	"strings"

	"google.golang.org/grpc/resolver"
)

// staticResolver resolves "kubelite:///a:1,b:2" to a fixed list of
// apiserver addresses, so one connection fails over between them.
type staticResolver struct{}

func (staticResolver) Scheme() string { return "kubelite" }

func (staticResolver) Build(t resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	var addrs []resolver.Address
	for _, a := range strings.Split(strings.TrimPrefix(t.Endpoint(), "/"), ",") {
		if a = strings.TrimSpace(a); a != "" {
			addrs = append(addrs, resolver.Address{Addr: a})
		}
	}
	return staticResolver{}, cc.UpdateState(resolver.State{Addresses: addrs})
}

func (staticResolver) ResolveNow(resolver.ResolveNowOptions) {}
func (staticResolver) Close()                                {}
