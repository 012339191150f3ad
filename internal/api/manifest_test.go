package api

import (
	"strings"
	"testing"

	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

func TestParseManifests(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantN   int
		wantErr string
	}{
		{name: "one pod", in: "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: c, command: [sleep]}]}\n", wantN: 1},
		{name: "multi-document with comments and empty docs", in: "# lead\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\n---\napiVersion: v1\nkind: Node\nmetadata: {name: node-a}\n", wantN: 2},
		{name: "json object", in: `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a"}}`, wantN: 1},
		{name: "list of items", in: "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Node, metadata: {name: a}}\n- {apiVersion: v1, kind: Node, metadata: {name: b}}\n", wantN: 2},
		{name: "unknown field names its path", in: "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: c, comand: [x]}]}\n", wantErr: `unknown field "spec.containers[0].comand"`},
		{name: "syntax error names the line of the file", in: "apiVersion: v1\nkind: Node\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n  bad: [\n", wantErr: "line 9"},
		{name: "unknown kind lists the known ones", in: "apiVersion: v1\nkind: Widget\n", wantErr: "supported kinds are Pod, Node"},
		{name: "wrong apiVersion", in: "apiVersion: v1\nkind: Deployment\n", wantErr: `Deployment is served as apiVersion "apps/v1"`},
		{name: "wrong type names the path", in: "apiVersion: v1\nkind: Pod\nmetadata: {name: a, labels: {x: 1}}\n", wantErr: "metadata.labels[x]: expected a string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := ParseManifests([]byte(tt.in), "f.yaml")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(objs) != tt.wantN {
				t.Fatalf("got %d objects, want %d", len(objs), tt.wantN)
			}
		})
	}
}

func TestIntOrStringAndInt64RoundTrip(t *testing.T) {
	in := `apiVersion: v1
kind: Pod
metadata: {name: a}
spec:
  terminationGracePeriodSeconds: 45
  containers:
  - name: c
    command: [server]
    ports: [{name: http, containerPort: 8080}]
    readinessProbe: {httpGet: {path: /ready, port: 8080}}
    livenessProbe: {tcpSocket: {port: http}}
`
	objs, err := ParseManifests([]byte(in), "f.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p := objs[0].(*v1.Pod)
	if got := p.Spec.Containers[0].ReadinessProbe.HttpGet.Port; got != "8080" {
		t.Errorf("httpGet.port = %q, want 8080", got)
	}
	m, err := ToMap(p)
	if err != nil {
		t.Fatal(err)
	}
	spec := m["spec"].(map[string]any)
	if got := spec["terminationGracePeriodSeconds"]; got == "45" || got == nil {
		t.Errorf("terminationGracePeriodSeconds printed as %#v, want the number 45", got)
	}
	b, err := MarshalYAML(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"port: 8080", "port: http", "terminationGracePeriodSeconds: 45"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("YAML lacks %q:\n%s", want, b)
		}
	}
}

func TestCodecRoundTrip(t *testing.T) {
	p := &v1.Pod{Metadata: &v1.ObjectMeta{Name: "a", Namespace: "default", Labels: map[string]string{"x": "y"}}}
	b, err := Encode(p)
	if err != nil {
		t.Fatal(err)
	}
	if !IsEncoded(b) {
		t.Fatal("encoded value lacks the header")
	}
	o, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if got := o.(*v1.Pod).Metadata.Labels["x"]; got != "y" {
		t.Errorf("label after round trip = %q", got)
	}
	if _, err := Decode([]byte("plain value")); err == nil {
		t.Error("decoding a value without the header succeeded")
	}
}
