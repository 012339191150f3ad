package api

import (
	"fmt"
	"math"
	"path"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"
	"k8s.io/apimachinery/pkg/api/resource"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metavalidation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

// Bounds on what one object may ask for. Each says where its value comes from.
const (
	// MaxDurationSeconds bounds every *Seconds field that becomes a
	// time.Duration. About 68 years, so seconds*time.Second (at most about
	// 292 years) never overflows.
	//
	// Only activeDeadlineSeconds has this bound in Kubernetes (1 to
	// math.MaxInt32, pkg/apis/core/validation ValidatePodSpec). The others
	// are kubelite's own, the same value for the same reason: Kubernetes
	// only asks terminationGracePeriodSeconds to be non-negative (a probe's
	// positive) and bounds neither tolerationSeconds nor a delete's
	// gracePeriodSeconds; kubelite caps them at MaxInt32 (tolerationSeconds
	// also at -MaxInt32).
	MaxDurationSeconds = math.MaxInt32

	// MaxContainersPerPod bounds a pod's containers. Kubernetes has no
	// explicit limit (the 1.5 MiB object does it); in kubelite each
	// container is two host processes (its shim and its program) with a log
	// file and pipes, so 128 containers in one pod is already more processes
	// than a node runs for Kubernetes' default 110 pods of one container.
	MaxContainersPerPod = 128

	// MaxGeneratedNameLength is the longest generateName prefix kept when a
	// name is generated: Kubernetes' names.SimpleNameGenerator keeps 58
	// (63 minus the 5 random characters), so generated names are always DNS
	// labels whatever the prefix.
	MaxGeneratedNameLength = 63 - 5

	// maxHashLength is the longest hash a controller appends to a name
	// (controller.ComputeHash: a uint32 in decimal digits).
	maxHashLength = 10
	// maxOrdinalDigits is the longest StatefulSet ordinal: start and
	// replicas are int32, so an ordinal stays below 2^32.
	maxOrdinalDigits = 10
	// maxFolderNameBytes is the longest file name on Linux file systems
	// (NAME_MAX); a claim's folder is named after the claim.
	maxFolderNameBytes = 255
)

// maxQuantity is the largest quantity whose milli-value fits in an int64:
// the scheduler and the kubelet read cpu with MilliValue, and a larger one
// wraps to a negative number.
var maxQuantity = resource.NewMilliQuantity(math.MaxInt64, resource.DecimalSI)

// GenerateName returns the name of an object created with generateName
// base and the random suffix, truncating base as Kubernetes does.
func GenerateName(base, suffix string) string {
	if len(base) > MaxGeneratedNameLength {
		base = base[:MaxGeneratedNameLength]
	}
	return base + suffix
}

// Validate checks a (defaulted) object and returns every problem with its
// field path.
func Validate(o Object) field.ErrorList {
	k := KindOf(o)
	errs := validateMeta(o.GetMetadata(), k, field.NewPath("metadata"))
	errs = append(errs, validateStorage(o)...)
	switch x := o.(type) {
	case *v1.Pod:
		errs = append(errs, ValidatePodSpec(x.GetSpec(), field.NewPath("spec"))...)
	case *v1.Node:
		errs = append(errs, validateNode(x)...)
	case *v1.Lease:
		if d := x.GetSpec().LeaseDurationSeconds; d != nil && *d <= 0 {
			errs = append(errs, field.Invalid(field.NewPath("spec", "leaseDurationSeconds"), *d, "must be greater than 0"))
		}
	case *v1.Event:
		p := field.NewPath("involvedObject")
		if x.GetInvolvedObject().GetName() == "" {
			errs = append(errs, field.Required(p.Child("name"), ""))
		}
		if t := x.GetType(); t != "" && t != "Normal" && t != "Warning" {
			errs = append(errs, field.NotSupported(field.NewPath("type"), t, []string{"Normal", "Warning"}))
		}
	case *v1.ReplicaSet:
		s := x.GetSpec()
		p := field.NewPath("spec")
		errs = append(errs, validateReplicas(s.Replicas, p.Child("replicas"))...)
		errs = append(errs, validateSelectorAndTemplate(s.GetSelector(), s.GetTemplate(), p)...)
		errs = append(errs, apivalidation.ValidateNonnegativeField(int64(s.GetMinReadySeconds()), p.Child("minReadySeconds"))...)
	case *v1.Deployment:
		errs = append(errs, validateDerivedName(x.GetMetadata().GetName(), 253, 1+maxHashLength, "its ReplicaSets are named <name>-<pod-template-hash>, a name of at most 253 characters")...)
		errs = append(errs, validateDeploymentSpec(x.GetSpec(), field.NewPath("spec"))...)
	case *v1.StatefulSet:
		errs = append(errs, validateStatefulSetName(x.GetMetadata().GetName())...)
		errs = append(errs, validateStatefulSetSpec(x.GetSpec(), x.GetMetadata().GetName(), field.NewPath("spec"))...)
	}
	return errs
}

// validateDerivedName checks that a controller's name leaves room for what
// it appends to name the objects it creates.
func validateDerivedName(name string, limit, suffix int, why string) field.ErrorList {
	if max := limit - suffix; len(name) > max {
		return field.ErrorList{field.Invalid(field.NewPath("metadata", "name"), name, fmt.Sprintf("must be no more than %d characters: %s", max, why))}
	}
	return nil
}

// validateStatefulSetName follows Kubernetes' ValidateStatefulSetName (a
// DNS label) and leaves room for the names the controller derives from it:
// the controller-revision-hash label <name>-<hash> is a label value (at most
// 63), pods are <name>-<ordinal> (their hostname and pod-name label) and
// claims <template>-<name>-<ordinal>.
func validateStatefulSetName(name string) field.ErrorList {
	p := field.NewPath("metadata", "name")
	var errs field.ErrorList
	if name == "" {
		return nil // validateMeta asks for it
	}
	for _, msg := range apivalidation.NameIsDNSLabel(name, false) {
		errs = append(errs, field.Invalid(p, name, msg))
	}
	if max := validation.LabelValueMaxLength - 1 - maxHashLength; len(name) > max {
		errs = append(errs, field.Invalid(p, name, fmt.Sprintf("must be no more than %d characters: the pods' controller-revision-hash label is <name>-<hash>, a label value of at most %d characters", max, validation.LabelValueMaxLength)))
	}
	return errs
}

// ValidateUpdate checks an update of old to new: Validate, plus what
// Kubernetes makes immutable. A problem the stored object already has is not
// held against the update (Kubernetes ratchets tightened validation the same
// way): an object stored before a bound existed can still have its status
// written and its finalizers removed, so it never gets stuck.
func ValidateUpdate(newObj, oldObj Object) field.ErrorList {
	errs := ratchet(Validate(newObj), Validate(oldObj))
	switch n := newObj.(type) {
	case *v1.Pod:
		o := oldObj.(*v1.Pod)
		// Kubernetes lets few pod spec fields change; kubelite allows
		// activeDeadlineSeconds, added tolerations and image.
		a, b := proto.Clone(n.GetSpec()).(*v1.PodSpec), proto.Clone(o.GetSpec()).(*v1.PodSpec)
		if a != nil && b != nil {
			a.ActiveDeadlineSeconds, b.ActiveDeadlineSeconds = nil, nil
			if len(a.Tolerations) >= len(b.Tolerations) {
				a.Tolerations, b.Tolerations = nil, nil
			}
			for i := range a.Containers {
				if i < len(b.Containers) {
					a.Containers[i].Image, b.Containers[i].Image = "", ""
				}
			}
			if !proto.Equal(a, b) {
				errs = append(errs, field.Forbidden(field.NewPath("spec"), "pod updates may not change fields other than `spec.containers[*].image`, `spec.activeDeadlineSeconds` or `spec.tolerations` (only additions to existing tolerations)"))
			}
		}
	case *v1.ReplicaSet:
		if !proto.Equal(n.GetSpec().GetSelector(), oldObj.(*v1.ReplicaSet).GetSpec().GetSelector()) {
			errs = append(errs, field.Invalid(field.NewPath("spec", "selector"), "", "field is immutable"))
		}
	case *v1.Deployment:
		if !proto.Equal(n.GetSpec().GetSelector(), oldObj.(*v1.Deployment).GetSpec().GetSelector()) {
			errs = append(errs, field.Invalid(field.NewPath("spec", "selector"), "", "field is immutable"))
		}
	case *v1.PersistentVolumeClaim:
		errs = append(errs, validateClaimUpdate(n, oldObj.(*v1.PersistentVolumeClaim))...)
	case *v1.StatefulSet:
		o := oldObj.(*v1.StatefulSet)
		if !proto.Equal(n.GetSpec().GetSelector(), o.GetSpec().GetSelector()) {
			errs = append(errs, field.Forbidden(field.NewPath("spec", "selector"), "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"))
		}
		if !sameClaims(n.GetSpec().GetVolumeClaimTemplates(), o.GetSpec().GetVolumeClaimTemplates()) {
			errs = append(errs, field.Forbidden(field.NewPath("spec", "volumeClaimTemplates"), "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"))
		}
		if n.GetSpec().GetServiceName() != o.GetSpec().GetServiceName() || n.GetSpec().GetPodManagementPolicy() != o.GetSpec().GetPodManagementPolicy() {
			errs = append(errs, field.Forbidden(field.NewPath("spec"), "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"))
		}
	}
	return errs
}

// ratchet drops from errs the errors old has too: the same field and the
// same kind of error, whatever the value. A field that was already invalid
// may change and stay invalid (a kubelet whose reported capacity overflows
// differently at each heartbeat still writes its status); a field that was
// valid may not become invalid.
func ratchet(errs, old field.ErrorList) field.ErrorList {
	if len(errs) == 0 || len(old) == 0 {
		return errs
	}
	type key struct {
		field string
		typ   field.ErrorType
	}
	had := map[key]bool{}
	for _, e := range old {
		had[key{e.Field, e.Type}] = true
	}
	var out field.ErrorList
	for _, e := range errs {
		if !had[key{e.Field, e.Type}] {
			out = append(out, e)
		}
	}
	return out
}

func sameClaims(a, b []*v1.PersistentVolumeClaimTemplate) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].GetMetadata().GetName() != b[i].GetMetadata().GetName() {
			return false
		}
	}
	return true
}

func validateMeta(m *v1.ObjectMeta, k *Kind, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if m == nil {
		return field.ErrorList{field.Required(p, "")}
	}
	if m.Name == "" && m.GenerateName == "" {
		errs = append(errs, field.Required(p.Child("name"), "name or generateName is required"))
	}
	if m.Name != "" {
		for _, msg := range validation.IsDNS1123Subdomain(m.Name) {
			errs = append(errs, field.Invalid(p.Child("name"), m.Name, msg))
		}
	}
	if m.GenerateName != "" {
		// The whole prefix, as Kubernetes' ValidateObjectMeta: a DNS
		// subdomain but for a trailing '-' (masked as Kubernetes does, so a
		// 253-character ReplicaSet's "<name>-" passes). GenerateName
		// truncates it only when it makes the name; controllers derive the
		// prefix as Kubernetes' getPodsPrefix (controller.PodsPrefix).
		for _, msg := range apivalidation.NameIsDNSSubdomain(m.GenerateName, true) {
			errs = append(errs, field.Invalid(p.Child("generateName"), m.GenerateName, msg))
		}
	}
	if k != nil && k.Namespaced {
		for _, msg := range validation.IsDNS1123Label(m.Namespace) {
			errs = append(errs, field.Invalid(p.Child("namespace"), m.Namespace, msg))
		}
	} else if m.Namespace != "" {
		errs = append(errs, field.Forbidden(p.Child("namespace"), "not allowed on this type"))
	}
	errs = append(errs, metavalidation.ValidateLabels(m.Labels, p.Child("labels"))...)
	errs = append(errs, apivalidation.ValidateAnnotations(m.Annotations, p.Child("annotations"))...)
	for i, r := range m.OwnerReferences {
		rp := p.Child("ownerReferences").Index(i)
		for name, v := range map[string]string{"apiVersion": r.ApiVersion, "kind": r.Kind, "name": r.Name, "uid": r.Uid} {
			if v == "" {
				errs = append(errs, field.Required(rp.Child(name), ""))
			}
		}
	}
	for i, f := range m.Finalizers {
		for _, msg := range validation.IsQualifiedName(f) {
			errs = append(errs, field.Invalid(p.Child("finalizers").Index(i), f, msg))
		}
	}
	return errs
}

// validateTemplateMeta checks the metadata of a template (a pod template,
// a volume claim template): labels and annotations as an object's, as
// Kubernetes' ValidatePodTemplateSpec does. A name, when given, must be a
// DNS subdomain: that is kubelite's own bound (Kubernetes does not check a
// pod template's name), so a 300-character name in a template is refused
// rather than stored.
func validateTemplateMeta(m *v1.ObjectMeta, p *field.Path) field.ErrorList {
	if m == nil {
		return nil
	}
	var errs field.ErrorList
	if m.Name != "" {
		for _, msg := range validation.IsDNS1123Subdomain(m.Name) {
			errs = append(errs, field.Invalid(p.Child("name"), m.Name, msg))
		}
	}
	errs = append(errs, metavalidation.ValidateLabels(m.Labels, p.Child("labels"))...)
	errs = append(errs, apivalidation.ValidateAnnotations(m.Annotations, p.Child("annotations"))...)
	return errs
}

// validateSeconds checks a *Seconds field that becomes a time.Duration
// against [lo, MaxDurationSeconds].
func validateSeconds(v int64, lo int64, p *field.Path) field.ErrorList {
	if v < lo || v > MaxDurationSeconds {
		return field.ErrorList{field.Invalid(p, v, validation.InclusiveRangeError(int(lo), MaxDurationSeconds))}
	}
	return nil
}

// hasDotDot reports a ".." element in a slash-separated path.
func hasDotDot(s string) bool {
	for _, e := range strings.Split(s, "/") {
		if e == ".." {
			return true
		}
	}
	return false
}

var restartPolicies = []string{"Always", "OnFailure", "Never"}

// ValidatePodSpec checks a pod spec (also a template's).
func ValidatePodSpec(s *v1.PodSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if s == nil {
		return field.ErrorList{field.Required(p, "")}
	}
	if len(s.Containers) == 0 {
		errs = append(errs, field.Required(p.Child("containers"), "at least one container is required"))
	}
	if len(s.Containers) > MaxContainersPerPod {
		errs = append(errs, field.TooMany(p.Child("containers"), len(s.Containers), MaxContainersPerPod))
	}
	names := map[string]bool{}
	for i, c := range s.Containers {
		cp := p.Child("containers").Index(i)
		if c.Name == "" {
			errs = append(errs, field.Required(cp.Child("name"), ""))
		} else {
			for _, msg := range validation.IsDNS1123Label(c.Name) {
				errs = append(errs, field.Invalid(cp.Child("name"), c.Name, msg))
			}
			if names[c.Name] {
				errs = append(errs, field.Duplicate(cp.Child("name"), c.Name))
			}
			names[c.Name] = true
		}
		if len(c.Command) == 0 || c.Command[0] == "" {
			errs = append(errs, field.Required(cp.Child("command"), "kubelite runs a process, not an image: give the program and its arguments"))
		}
		if hasDotDot(c.WorkingDir) {
			errs = append(errs, field.Invalid(cp.Child("workingDir"), c.WorkingDir, "must not contain '..': kubelite runs the container as a process on the host, and '..' would leave the pod's folder"))
		}
		for j, e := range c.Env {
			for _, msg := range validation.IsEnvVarName(e.Name) {
				errs = append(errs, field.Invalid(cp.Child("env").Index(j).Child("name"), e.Name, msg))
			}
		}
		errs = append(errs, validateResources(c.GetResources(), cp.Child("resources"))...)
		ports := map[string]bool{}
		for j, port := range c.Ports {
			pp := cp.Child("ports").Index(j)
			for _, msg := range validation.IsValidPortNum(int(port.ContainerPort)) {
				errs = append(errs, field.Invalid(pp.Child("containerPort"), port.ContainerPort, msg))
			}
			if port.Name != "" {
				ports[port.Name] = true
				for _, msg := range validation.IsValidPortName(port.Name) {
					errs = append(errs, field.Invalid(pp.Child("name"), port.Name, msg))
				}
			}
			if port.Protocol != "TCP" && port.Protocol != "UDP" && port.Protocol != "SCTP" {
				errs = append(errs, field.NotSupported(pp.Child("protocol"), port.Protocol, []string{"TCP", "UDP", "SCTP"}))
			}
		}
		errs = append(errs, validateProbe(c.LivenessProbe, ports, cp.Child("livenessProbe"), true)...)
		errs = append(errs, validateProbe(c.ReadinessProbe, ports, cp.Child("readinessProbe"), false)...)
		errs = append(errs, validateProbe(c.StartupProbe, ports, cp.Child("startupProbe"), true)...)
		if pr := c.ReadinessProbe; pr != nil && pr.TerminationGracePeriodSeconds != nil {
			errs = append(errs, field.Invalid(cp.Child("readinessProbe", "terminationGracePeriodSeconds"), *pr.TerminationGracePeriodSeconds, "must not be set for readinessProbes"))
		}
		if c.Lifecycle != nil {
			errs = append(errs, validateHandler(c.Lifecycle.PreStop, s.TerminationGracePeriodSeconds, ports, cp.Child("lifecycle", "preStop"))...)
			errs = append(errs, validateHandler(c.Lifecycle.PostStart, s.TerminationGracePeriodSeconds, ports, cp.Child("lifecycle", "postStart"))...)
		}
	}
	errs = append(errs, validatePodRequests(s, p)...)
	if !contains(restartPolicies, s.RestartPolicy) {
		errs = append(errs, field.NotSupported(p.Child("restartPolicy"), s.RestartPolicy, restartPolicies))
	}
	if g := s.TerminationGracePeriodSeconds; g != nil {
		errs = append(errs, validateSeconds(*g, 0, p.Child("terminationGracePeriodSeconds"))...)
	}
	if d := s.ActiveDeadlineSeconds; d != nil {
		errs = append(errs, validateSeconds(*d, 1, p.Child("activeDeadlineSeconds"))...)
	}
	if s.NodeName != "" {
		for _, msg := range validation.IsDNS1123Subdomain(s.NodeName) {
			errs = append(errs, field.Invalid(p.Child("nodeName"), s.NodeName, msg))
		}
	}
	errs = append(errs, metavalidation.ValidateLabels(s.NodeSelector, p.Child("nodeSelector"))...)
	for i, t := range s.Tolerations {
		tp := p.Child("tolerations").Index(i)
		switch t.Operator {
		case "", "Equal":
		case "Exists":
			if t.Value != "" {
				errs = append(errs, field.Invalid(tp.Child("operator"), t.Value, "value must be empty when `operator` is 'Exists'"))
			}
		default:
			errs = append(errs, field.NotSupported(tp.Child("operator"), t.Operator, []string{"Equal", "Exists"}))
		}
		if t.Key == "" && t.Operator != "Exists" {
			errs = append(errs, field.Invalid(tp.Child("operator"), t.Operator, "operator must be Exists when `key` is empty"))
		}
		if t.Effect != "" {
			errs = append(errs, validateTaintEffect(t.Effect, tp.Child("effect"))...)
		}
		if t.TolerationSeconds != nil && t.Effect != "NoExecute" {
			errs = append(errs, field.Invalid(tp.Child("effect"), t.Effect, "effect must be 'NoExecute' when `tolerationSeconds` is set"))
		}
		// Zero and negative values mean evict at once (Kubernetes); the
		// bound keeps seconds*time.Second from wrapping either way.
		if ts := t.TolerationSeconds; ts != nil && (*ts < -MaxDurationSeconds || *ts > MaxDurationSeconds) {
			errs = append(errs, field.Invalid(tp.Child("tolerationSeconds"), *ts, validation.InclusiveRangeError(-MaxDurationSeconds, MaxDurationSeconds)))
		}
	}
	vols := map[string]bool{}
	for i, v := range s.Volumes {
		vp := p.Child("volumes").Index(i)
		for _, msg := range validation.IsDNS1123Label(v.Name) {
			errs = append(errs, field.Invalid(vp.Child("name"), v.Name, msg))
		}
		if vols[v.Name] {
			errs = append(errs, field.Duplicate(vp.Child("name"), v.Name))
		}
		vols[v.Name] = true
		errs = append(errs, validateClaimSource(v.PersistentVolumeClaim, vp.Child("persistentVolumeClaim"))...)
	}
	for i, c := range s.Containers {
		// Unique as the kubelet links them: at Clean("/"+mountPath) under
		// the pod's folder, so "data" and "/data" are the same link. (A
		// kubelite divergence: Kubernetes compares the strings as given, as
		// its mounts live in the container's own root.)
		paths := map[string]bool{}
		for j, m := range c.VolumeMounts {
			mp := p.Child("containers").Index(i).Child("volumeMounts").Index(j)
			if !vols[m.Name] {
				errs = append(errs, field.NotFound(mp.Child("name"), m.Name))
			}
			link := path.Clean("/" + m.MountPath)
			switch {
			case m.MountPath == "":
				errs = append(errs, field.Required(mp.Child("mountPath"), ""))
			case hasDotDot(m.MountPath):
				errs = append(errs, field.Invalid(mp.Child("mountPath"), m.MountPath, "must not contain '..': the mount is a link in the pod's folder on the host"))
			case paths[link]:
				errs = append(errs, field.Invalid(mp.Child("mountPath"), m.MountPath, "must be unique (relative and absolute paths name the same link in the pod's folder)"))
			}
			paths[link] = true
		}
	}
	return errs
}

func validateTaintEffect(e string, p *field.Path) field.ErrorList {
	effects := []string{"NoSchedule", "PreferNoSchedule", "NoExecute"}
	if !contains(effects, e) {
		return field.ErrorList{field.NotSupported(p, e, effects)}
	}
	return nil
}

func validateResources(r *v1.ResourceRequirements, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	parsed := map[string]map[string]resource.Quantity{}
	for _, part := range []struct {
		name string
		m    map[string]string
	}{{"limits", r.GetLimits()}, {"requests", r.GetRequests()}} {
		parsed[part.name] = map[string]resource.Quantity{}
		for name, val := range part.m {
			fp := p.Child(part.name).Key(name)
			if name != "cpu" && name != "memory" && name != "ephemeral-storage" && name != "pods" {
				errs = append(errs, field.NotSupported(fp, name, []string{"cpu", "memory", "ephemeral-storage"}))
				continue
			}
			q, err := resource.ParseQuantity(val)
			if err != nil {
				errs = append(errs, field.Invalid(fp, val, "must be a quantity such as \"250m\", \"1\", \"128Mi\" or \"1G\""))
				continue
			}
			errs = append(errs, validateQuantity(q, val, fp)...)
			parsed[part.name][name] = q
		}
	}
	for name, req := range parsed["requests"] {
		if lim, ok := parsed["limits"][name]; ok && req.Cmp(lim) > 0 {
			errs = append(errs, field.Invalid(p.Child("requests").Key(name), req.String(), fmt.Sprintf("must be less than or equal to %s limit of %s", name, lim.String())))
		}
	}
	return errs
}

// validateQuantity is Kubernetes' ValidateNonnegativeQuantity plus an upper
// bound: a quantity whose milli-value overflows an int64 would turn
// negative in the scheduler and the kubelet (and over-commit a node).
func validateQuantity(q resource.Quantity, val string, p *field.Path) field.ErrorList {
	if q.Sign() < 0 {
		return field.ErrorList{field.Invalid(p, val, "must be greater than or equal to 0")}
	}
	if q.Cmp(*maxQuantity) > 0 {
		return field.ErrorList{field.Invalid(p, val, "must be less than or equal to "+maxQuantity.String()+" (about 9.2e15): its milli-value must fit in 64 bits")}
	}
	return nil
}

// validatePodRequests bounds what the scheduler adds up: the pod's request
// of each resource, the sum over its containers, obeys the same bound as one
// quantity, so two large containers cannot wrap the pod's total negative.
func validatePodRequests(s *v1.PodSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	total := map[string]*resource.Quantity{}
	for i, c := range s.Containers {
		for name, val := range c.GetResources().GetRequests() {
			q, err := resource.ParseQuantity(val)
			if err != nil || q.Sign() < 0 || q.Cmp(*maxQuantity) > 0 {
				continue // validateResources reports it
			}
			t := total[name]
			if t == nil {
				t = &resource.Quantity{}
				total[name] = t
			}
			t.Add(q)
			if t.Cmp(*maxQuantity) > 0 {
				errs = append(errs, field.Invalid(p.Child("containers").Index(i).Child("resources", "requests").Key(name), val,
					"the pod's requests of "+name+" add up to more than "+maxQuantity.String()+": the sum's milli-value must fit in 64 bits"))
				t.Sub(q) // report each container that overflows once
			}
		}
	}
	return errs
}

func validateProbe(pr *v1.Probe, ports map[string]bool, p *field.Path, oneSuccess bool) field.ErrorList {
	if pr == nil {
		return nil
	}
	errs := validateActions(pr.Exec, pr.HttpGet, pr.TcpSocket, nil, ports, p)
	for name, v := range map[string]int32{"initialDelaySeconds": pr.InitialDelaySeconds, "timeoutSeconds": pr.TimeoutSeconds, "periodSeconds": pr.PeriodSeconds, "successThreshold": pr.SuccessThreshold, "failureThreshold": pr.FailureThreshold} {
		if v < 0 {
			errs = append(errs, field.Invalid(p.Child(name), v, "must be greater than or equal to 0"))
		}
	}
	if g := pr.TerminationGracePeriodSeconds; g != nil {
		errs = append(errs, validateSeconds(*g, 1, p.Child("terminationGracePeriodSeconds"))...)
	}
	if oneSuccess && pr.SuccessThreshold != 1 {
		errs = append(errs, field.Invalid(p.Child("successThreshold"), pr.SuccessThreshold, "must be 1"))
	}
	return errs
}

func validateHandler(h *v1.LifecycleHandler, grace *int64, ports map[string]bool, p *field.Path) field.ErrorList {
	if h == nil {
		return nil
	}
	errs := validateActions(h.Exec, h.HttpGet, h.TcpSocket, h.Sleep, ports, p)
	// Kubernetes' validateSleepAction: a sleep longer than the grace period
	// would be cut by the SIGKILL anyway.
	if sl := h.Sleep; sl != nil && grace != nil && sl.Seconds > *grace {
		errs = append(errs, field.Invalid(p.Child("sleep", "seconds"), sl.Seconds, fmt.Sprintf("must be non-negative and less than terminationGracePeriodSeconds (%d)", *grace)))
	}
	return errs
}

func validateActions(exec *v1.ExecAction, get *v1.HTTPGetAction, tcp *v1.TCPSocketAction, sleep *v1.SleepAction, ports map[string]bool, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	n := 0
	if exec != nil {
		n++
		if len(exec.Command) == 0 {
			errs = append(errs, field.Required(p.Child("exec", "command"), ""))
		}
	}
	if get != nil {
		n++
		errs = append(errs, validatePort(get.Port, ports, p.Child("httpGet", "port"))...)
		if get.Scheme != "HTTP" && get.Scheme != "HTTPS" {
			errs = append(errs, field.NotSupported(p.Child("httpGet", "scheme"), get.Scheme, []string{"HTTP", "HTTPS"}))
		}
	}
	if tcp != nil {
		n++
		errs = append(errs, validatePort(tcp.Port, ports, p.Child("tcpSocket", "port"))...)
	}
	if sleep != nil {
		n++
		if sleep.Seconds < 0 {
			errs = append(errs, field.Invalid(p.Child("sleep", "seconds"), sleep.Seconds, "must be greater than or equal to 0"))
		}
	}
	switch {
	case n == 0:
		errs = append(errs, field.Required(p, "must specify a handler type (exec, httpGet or tcpSocket)"))
	case n > 1:
		errs = append(errs, field.Forbidden(p, "may not specify more than 1 handler type"))
	}
	return errs
}

func validatePort(port string, names map[string]bool, p *field.Path) field.ErrorList {
	if port == "" {
		return field.ErrorList{field.Required(p, "")}
	}
	if n, err := strconv.Atoi(port); err == nil {
		for _, msg := range validation.IsValidPortNum(n) {
			return field.ErrorList{field.Invalid(p, port, msg)}
		}
		return nil
	}
	if !names[port] {
		return field.ErrorList{field.Invalid(p, port, "must be a port number or the name of one of the container's ports")}
	}
	return nil
}

func validateNode(n *v1.Node) field.ErrorList {
	var errs field.ErrorList
	for i, t := range n.GetSpec().GetTaints() {
		tp := field.NewPath("spec", "taints").Index(i)
		for _, msg := range validation.IsQualifiedName(t.Key) {
			errs = append(errs, field.Invalid(tp.Child("key"), t.Key, msg))
		}
		errs = append(errs, validateTaintEffect(t.Effect, tp.Child("effect"))...)
	}
	for _, part := range []struct {
		name string
		m    map[string]string
	}{{"capacity", n.GetStatus().GetCapacity()}, {"allocatable", n.GetStatus().GetAllocatable()}} {
		for name, val := range part.m {
			fp := field.NewPath("status", part.name).Key(name)
			q, err := resource.ParseQuantity(val)
			if err != nil {
				errs = append(errs, field.Invalid(fp, val, "must be a quantity"))
				continue
			}
			errs = append(errs, validateQuantity(q, val, fp)...)
		}
	}
	return errs
}

func validateReplicas(r *int32, p *field.Path) field.ErrorList {
	if r != nil && *r < 0 {
		return field.ErrorList{field.Invalid(p, *r, "must be greater than or equal to 0")}
	}
	return nil
}

func validateSelectorAndTemplate(sel *v1.LabelSelector, t *v1.PodTemplateSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if sel == nil || (len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0) {
		errs = append(errs, field.Required(p.Child("selector"), "a non-empty selector is required"))
	} else if s, err := LabelSelectorAsSelector(sel); err != nil {
		errs = append(errs, field.Invalid(p.Child("selector"), "", err.Error()))
	} else if t != nil && !s.Matches(labelSet(t.GetMetadata().GetLabels())) {
		errs = append(errs, field.Invalid(p.Child("template", "metadata", "labels"), t.GetMetadata().GetLabels(), "`selector` does not match template `labels`"))
	}
	if t == nil {
		return append(errs, field.Required(p.Child("template"), ""))
	}
	errs = append(errs, validateTemplateMeta(t.GetMetadata(), p.Child("template", "metadata"))...)
	errs = append(errs, ValidatePodSpec(t.GetSpec(), p.Child("template", "spec"))...)
	return errs
}

type labelSet map[string]string

func (l labelSet) Has(k string) bool              { _, ok := l[k]; return ok }
func (l labelSet) Get(k string) string            { return l[k] }
func (l labelSet) Lookup(k string) (string, bool) { v, ok := l[k]; return v, ok }

// ParseIntOrPercent reads a Deployment maxSurge/maxUnavailable value.
func ParseIntOrPercent(s string) (value int, percent bool, err error) {
	if strings.HasSuffix(s, "%") {
		v, err := strconv.ParseInt(strings.TrimSuffix(s, "%"), 10, 32)
		if err != nil {
			return 0, true, fmt.Errorf("must be an integer or a percentage such as \"25%%\"")
		}
		return int(v), true, nil
	}
	v, err := strconv.ParseInt(s, 10, 32)
	if err != nil {
		return 0, false, fmt.Errorf("must be an int32 or a percentage such as \"25%%\"")
	}
	return int(v), false, nil
}

func validateDeploymentSpec(s *v1.DeploymentSpec, p *field.Path) field.ErrorList {
	errs := validateReplicas(s.Replicas, p.Child("replicas"))
	errs = append(errs, validateSelectorAndTemplate(s.GetSelector(), s.GetTemplate(), p)...)
	st := s.GetStrategy()
	switch st.GetType() {
	case "Recreate":
		if st.GetRollingUpdate() != nil {
			errs = append(errs, field.Forbidden(p.Child("strategy", "rollingUpdate"), "may not be specified when strategy `type` is 'Recreate'"))
		}
	case "RollingUpdate":
		ru := st.GetRollingUpdate()
		rp := p.Child("strategy", "rollingUpdate")
		su, sp, err1 := ParseIntOrPercent(ru.GetMaxSurge())
		un, up, err2 := ParseIntOrPercent(ru.GetMaxUnavailable())
		if err1 != nil {
			errs = append(errs, field.Invalid(rp.Child("maxSurge"), ru.GetMaxSurge(), err1.Error()))
		}
		if err2 != nil {
			errs = append(errs, field.Invalid(rp.Child("maxUnavailable"), ru.GetMaxUnavailable(), err2.Error()))
		}
		if err1 == nil && err2 == nil {
			if su < 0 {
				errs = append(errs, field.Invalid(rp.Child("maxSurge"), ru.GetMaxSurge(), "must be greater than or equal to 0"))
			}
			if un < 0 || (up && un > 100) {
				errs = append(errs, field.Invalid(rp.Child("maxUnavailable"), ru.GetMaxUnavailable(), "must be between 0 and 100%"))
			}
			if su == 0 && un == 0 {
				errs = append(errs, field.Invalid(rp.Child("maxUnavailable"), ru.GetMaxUnavailable(), "may not be 0 when `maxSurge` is 0"))
			}
			_ = sp
		}
	default:
		errs = append(errs, field.NotSupported(p.Child("strategy", "type"), st.GetType(), []string{"Recreate", "RollingUpdate"}))
	}
	if r := s.RevisionHistoryLimit; r != nil && *r < 0 {
		errs = append(errs, field.Invalid(p.Child("revisionHistoryLimit"), *r, "must be greater than or equal to 0"))
	}
	errs = append(errs, apivalidation.ValidateNonnegativeField(int64(s.MinReadySeconds), p.Child("minReadySeconds"))...)
	if d := s.ProgressDeadlineSeconds; d != nil {
		if *d <= 0 {
			errs = append(errs, field.Invalid(p.Child("progressDeadlineSeconds"), *d, "must be greater than 0"))
		} else if *d <= s.MinReadySeconds {
			errs = append(errs, field.Invalid(p.Child("progressDeadlineSeconds"), *d, "must be greater than minReadySeconds"))
		}
	}
	return errs
}

func validateStatefulSetSpec(s *v1.StatefulSetSpec, set string, p *field.Path) field.ErrorList {
	errs := validateReplicas(s.Replicas, p.Child("replicas"))
	errs = append(errs, apivalidation.ValidateNonnegativeField(int64(s.MinReadySeconds), p.Child("minReadySeconds"))...)
	if r := s.RevisionHistoryLimit; r != nil && *r < 0 {
		errs = append(errs, field.Invalid(p.Child("revisionHistoryLimit"), *r, "must be greater than or equal to 0"))
	}
	errs = append(errs, apivalidation.ValidateNonnegativeField(int64(s.GetOrdinals().GetStart()), p.Child("ordinals", "start"))...)
	// Containers may mount the claims: the controller adds them as volumes.
	tmpl := s.GetTemplate()
	if tmpl != nil && tmpl.Spec != nil && len(s.VolumeClaimTemplates) > 0 {
		tmpl = proto.Clone(tmpl).(*v1.PodTemplateSpec)
		for _, c := range s.VolumeClaimTemplates {
			tmpl.Spec.Volumes = append(tmpl.Spec.Volumes, &v1.Volume{Name: c.GetMetadata().GetName(),
				PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{ClaimName: c.GetMetadata().GetName()}})
		}
	}
	errs = append(errs, validateSelectorAndTemplate(s.GetSelector(), tmpl, p)...)
	if pm := s.GetPodManagementPolicy(); pm != "OrderedReady" && pm != "Parallel" {
		errs = append(errs, field.NotSupported(p.Child("podManagementPolicy"), pm, []string{"OrderedReady", "Parallel"}))
	}
	us := s.GetUpdateStrategy()
	switch us.GetType() {
	case "OnDelete":
	case "RollingUpdate":
		ru := us.GetRollingUpdate()
		if ru.Partition != nil && *ru.Partition < 0 {
			errs = append(errs, field.Invalid(p.Child("updateStrategy", "rollingUpdate", "partition"), *ru.Partition, "must be greater than or equal to 0"))
		}
		if mu := ru.GetMaxUnavailable(); mu != "" {
			v, _, err := ParseIntOrPercent(mu)
			if err != nil || v < 1 {
				errs = append(errs, field.Invalid(p.Child("updateStrategy", "rollingUpdate", "maxUnavailable"), mu, "must be at least 1 or a positive percentage"))
			}
		}
	default:
		errs = append(errs, field.NotSupported(p.Child("updateStrategy", "type"), us.GetType(), []string{"RollingUpdate", "OnDelete"}))
	}
	pol := s.GetPersistentVolumeClaimRetentionPolicy()
	for name, v := range map[string]string{"whenDeleted": pol.GetWhenDeleted(), "whenScaled": pol.GetWhenScaled()} {
		if v != "Retain" && v != "Delete" {
			errs = append(errs, field.NotSupported(p.Child("persistentVolumeClaimRetentionPolicy", name), v, []string{"Retain", "Delete"}))
		}
	}
	// A claim is <template>-<set>-<ordinal>: an object name (a DNS
	// subdomain) and a folder name on the node, for the largest ordinal.
	maxOrdinal := strings.Repeat("9", maxOrdinalDigits)
	for i, c := range s.VolumeClaimTemplates {
		cp := p.Child("volumeClaimTemplates").Index(i).Child("metadata")
		name := c.GetMetadata().GetName()
		errs = append(errs, validateTemplateMeta(c.GetMetadata(), cp)...)
		for _, msg := range validation.IsDNS1123Label(name) {
			errs = append(errs, field.Invalid(cp.Child("name"), name, msg))
		}
		claim := name + "-" + set + "-" + maxOrdinal
		if len(validation.IsDNS1123Subdomain(claim)) > 0 || len(claim) > maxFolderNameBytes {
			errs = append(errs, field.Invalid(cp.Child("name"), name, fmt.Sprintf("claim names <name>-%s-<ordinal> must be DNS subdomains and folder names of at most %d characters", set, min(validation.DNS1123SubdomainMaxLength, maxFolderNameBytes))))
		}
	}
	return errs
}

// ValidateDeleteOptions checks what a delete asks for. A negative
// gracePeriodSeconds is allowed and means 1 (Kubernetes' BeforeDelete); one
// above MaxDurationSeconds would overflow the deletionTimestamp and the
// kubelet's wait.
func ValidateDeleteOptions(o *v1.DeleteOptions) field.ErrorList {
	var errs field.ErrorList
	if g := o.GetGracePeriodSeconds(); g > MaxDurationSeconds {
		errs = append(errs, field.Invalid(field.NewPath("gracePeriodSeconds"), g, fmt.Sprintf("must be less than or equal to %d", MaxDurationSeconds)))
	}
	return errs
}
