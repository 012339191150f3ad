package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"sigs.k8s.io/yaml"
)

// intOrString lists the fields that Kubernetes types as IntOrString: stored as
// strings, read from either form and printed as a number when numeric.
var intOrString = map[protoreflect.FullName]bool{
	"kubelite.v1.HTTPGetAction.port":                               true,
	"kubelite.v1.TCPSocketAction.port":                             true,
	"kubelite.v1.RollingUpdateDeployment.max_unavailable":          true,
	"kubelite.v1.RollingUpdateDeployment.max_surge":                true,
	"kubelite.v1.RollingUpdateStatefulSetStrategy.max_unavailable": true,
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)
var yamlLine = regexp.MustCompile(`line (\d+)`)

// ParseManifests reads one or more objects from YAML or JSON: multi-document
// YAML separated by "---", a JSON object, or a List of items. source names
// the input in errors. Errors name the line (YAML syntax) or the field path.
func ParseManifests(data []byte, source string) ([]Object, error) {
	var out []Object
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) > 0 && trimmed[0] == '{' {
		objs, err := decodeDocument(trimmed, source)
		if err != nil {
			return nil, err
		}
		return objs, nil
	}
	starts := []int{0}
	for _, loc := range docSeparator.FindAllIndex(data, -1) {
		starts = append(starts, loc[1])
	}
	for i, start := range starts {
		end := len(data)
		if i+1 < len(starts) {
			end = docSeparator.FindAllIndex(data, -1)[i][0]
		}
		doc := data[start:end]
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		lineOffset := bytes.Count(data[:start], []byte("\n"))
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			msg := yamlLine.ReplaceAllStringFunc(err.Error(), func(s string) string {
				n, _ := strconv.Atoi(strings.TrimPrefix(s, "line "))
				return fmt.Sprintf("line %d", n+lineOffset)
			})
			return nil, fmt.Errorf("%s: %s", source, msg)
		}
		objs, err := decodeDocument(js, fmt.Sprintf("%s (document at line %d)", source, lineOffset+1))
		if err != nil {
			return nil, err
		}
		out = append(out, objs...)
	}
	return out, nil
}

func stripComments(doc []byte) []byte {
	var b bytes.Buffer
	for _, l := range bytes.Split(doc, []byte("\n")) {
		if t := bytes.TrimSpace(l); len(t) > 0 && t[0] != '#' {
			b.Write(l)
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

func decodeDocument(js []byte, source string) ([]Object, error) {
	var head struct {
		Kind  string            `json:"kind"`
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(js, &head); err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	if head.Kind == "List" || (strings.HasSuffix(head.Kind, "List") && head.Items != nil) {
		var out []Object
		for i, it := range head.Items {
			o, err := DecodeJSON(it)
			if err != nil {
				return nil, fmt.Errorf("%s: items[%d]: %w", source, i, err)
			}
			out = append(out, o)
		}
		return out, nil
	}
	o, err := DecodeJSON(js)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	return []Object{o}, nil
}

// DecodeJSON reads one Kubernetes-shaped JSON object. apiVersion and kind
// must name a known kind; unknown fields are errors that name their path.
func DecodeJSON(js []byte) (Object, error) {
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", err)
	}
	kindName, _ := m["kind"].(string)
	apiVersion, _ := m["apiVersion"].(string)
	if kindName == "" {
		return nil, fmt.Errorf("kind: Required value: expected one of %s", strings.Join(kindNames(), ", "))
	}
	var k *Kind
	for _, c := range Kinds {
		if c.Kind == kindName {
			k = c
		}
	}
	if k == nil {
		return nil, fmt.Errorf("kind: Unsupported value %q: supported kinds are %s", kindName, strings.Join(kindNames(), ", "))
	}
	if apiVersion != k.APIVersion {
		return nil, fmt.Errorf("apiVersion: Invalid value %q: %s is served as apiVersion %q", apiVersion, k.Kind, k.APIVersion)
	}
	o := k.NewEmpty()
	var errs []string
	norm := normalize(m, o.ProtoReflect().Descriptor(), "", &errs)
	if len(errs) > 0 {
		return nil, fmt.Errorf("strict decoding error: %s", strings.Join(errs, ", "))
	}
	b, err := json.Marshal(norm)
	if err != nil {
		return nil, err
	}
	if err := protojson.Unmarshal(b, o); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", k.Kind, err)
	}
	return o, nil
}

func kindNames() []string {
	var out []string
	for _, k := range Kinds {
		out = append(out, k.Kind)
	}
	return out
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// normalize checks v against message md, collecting errors with field paths,
// and converts IntOrString numbers to strings so protojson accepts them.
func normalize(v any, md protoreflect.MessageDescriptor, path string, errs *[]string) any {
	if md.FullName() == "google.protobuf.Timestamp" {
		if _, ok := v.(string); !ok {
			*errs = append(*errs, fmt.Sprintf("%s: expected an RFC 3339 time string", path))
		}
		return v
	}
	obj, ok := v.(map[string]any)
	if !ok {
		*errs = append(*errs, fmt.Sprintf("%s: expected an object, got %s", orTop(path), jsonType(v)))
		return v
	}
	out := make(map[string]any, len(obj))
	for key, val := range obj {
		fd := md.Fields().ByJSONName(key)
		p := join(path, key)
		if fd == nil {
			*errs = append(*errs, fmt.Sprintf("unknown field %q", p))
			continue
		}
		if val == nil {
			continue
		}
		switch {
		case fd.IsMap():
			mv, ok := val.(map[string]any)
			if !ok {
				*errs = append(*errs, fmt.Sprintf("%s: expected an object, got %s", p, jsonType(val)))
				continue
			}
			nm := make(map[string]any, len(mv))
			for mk, e := range mv {
				nm[mk] = normalizeValue(e, fd.MapValue(), p+"["+mk+"]", errs)
			}
			out[key] = nm
		case fd.IsList():
			lv, ok := val.([]any)
			if !ok {
				*errs = append(*errs, fmt.Sprintf("%s: expected a list, got %s", p, jsonType(val)))
				continue
			}
			nl := make([]any, len(lv))
			for i, e := range lv {
				nl[i] = normalizeValue(e, fd, fmt.Sprintf("%s[%d]", p, i), errs)
			}
			out[key] = nl
		default:
			out[key] = normalizeValue(val, fd, p, errs)
		}
	}
	return out
}

func orTop(path string) string {
	if path == "" {
		return "<top>"
	}
	return path
}

func normalizeValue(v any, fd protoreflect.FieldDescriptor, path string, errs *[]string) any {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return normalize(v, fd.Message(), path, errs)
	case protoreflect.StringKind:
		if n, ok := v.(json.Number); ok && intOrString[fd.FullName()] {
			return n.String()
		}
		if _, ok := v.(string); !ok {
			*errs = append(*errs, fmt.Sprintf("%s: expected a string, got %s", path, jsonType(v)))
		}
	case protoreflect.BoolKind:
		if _, ok := v.(bool); !ok {
			*errs = append(*errs, fmt.Sprintf("%s: expected a boolean, got %s", path, jsonType(v)))
		}
	case protoreflect.BytesKind:
		if _, ok := v.(string); !ok {
			*errs = append(*errs, fmt.Sprintf("%s: expected a base64 string, got %s", path, jsonType(v)))
		}
	default: // numbers
		n, ok := v.(json.Number)
		if !ok {
			*errs = append(*errs, fmt.Sprintf("%s: expected a number, got %s", path, jsonType(v)))
			return v
		}
		if _, err := n.Int64(); err != nil {
			*errs = append(*errs, fmt.Sprintf("%s: expected an integer, got %s", path, n))
		}
	}
	return v
}

func jsonType(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return fmt.Sprintf("string %q", x)
	case json.Number:
		return "number " + x.String()
	case bool:
		return "boolean"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// ToMap converts an object to Kubernetes-shaped JSON values: int64 fields
// as numbers (protojson writes strings), numeric IntOrStrings as numbers.
func ToMap(o Object) (map[string]any, error) {
	b, err := protojson.Marshal(o)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	denormalize(m, o.ProtoReflect().Descriptor())
	return m, nil
}

func denormalize(v any, md protoreflect.MessageDescriptor) {
	obj, ok := v.(map[string]any)
	if !ok || md.FullName() == "google.protobuf.Timestamp" {
		return
	}
	for key, val := range obj {
		fd := md.Fields().ByJSONName(key)
		if fd == nil {
			continue
		}
		switch {
		case fd.IsMap():
			if mv, ok := val.(map[string]any); ok {
				for mk, e := range mv {
					mv[mk] = denormalizeValue(e, fd.MapValue())
				}
			}
		case fd.IsList():
			if lv, ok := val.([]any); ok {
				for i, e := range lv {
					lv[i] = denormalizeValue(e, fd)
				}
			}
		default:
			obj[key] = denormalizeValue(val, fd)
		}
	}
}

func denormalizeValue(v any, fd protoreflect.FieldDescriptor) any {
	switch fd.Kind() {
	case protoreflect.MessageKind:
		denormalize(v, fd.Message())
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		if s, ok := v.(string); ok {
			return json.Number(s)
		}
	case protoreflect.StringKind:
		if s, ok := v.(string); ok && intOrString[fd.FullName()] {
			if _, err := strconv.Atoi(s); err == nil {
				return json.Number(s)
			}
		}
	}
	return v
}

// MarshalJSON prints an object as indented Kubernetes-shaped JSON.
func MarshalJSON(o Object) ([]byte, error) {
	m, err := ToMap(o)
	if err != nil {
		return nil, err
	}
	return json.MarshalIndent(m, "", "    ")
}

// MarshalYAML prints an object as Kubernetes-shaped YAML.
func MarshalYAML(o Object) ([]byte, error) {
	m, err := ToMap(o)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return yaml.JSONToYAML(b)
}
