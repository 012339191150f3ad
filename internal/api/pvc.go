package api

import (
	"slices"

	"fmt"
	"strconv"

	"google.golang.org/protobuf/proto"
	"k8s.io/apimachinery/pkg/api/resource"
	metavalidation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

// Names around PersistentVolumeClaims.
const (
	// FinalizerPVCProtection holds a claim while a pod uses it; the
	// apiserver adds it on create (Kubernetes' StorageObjectInUseProtection
	// admission) and the pvc-protection controller removes it.
	FinalizerPVCProtection = "kubernetes.io/pvc-protection"
	// FinalizerClaimFolder holds a bound claim until the kubelet of its
	// node has removed the claim's folder (as a local-path provisioner).
	FinalizerClaimFolder = "kubelite.io/claim-folder"
	// AnnSelectedNode names the node whose kubelet bound the claim (and
	// holds its folder).
	AnnSelectedNode = "volume.kubernetes.io/selected-node"
	// DefaultClaimStorage is the size a claim gets when it names none.
	// Kubernetes requires it; kubelite's folders have no size, and older
	// kubelite manifests give volumeClaimTemplates a name only.
	DefaultClaimStorage = "1Gi"
)

// ClaimAccessModes are the access modes Kubernetes knows.
var ClaimAccessModes = []string{"ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"}

// ClaimName is the claim a StatefulSet's template gives ordinal i:
// <template>-<set>-<ordinal>.
func ClaimName(template, set string, ordinal int) string {
	return template + "-" + set + "-" + strconv.Itoa(ordinal)
}

// DefaultClaimSpec fills accessModes (ReadWriteOnce) and
// resources.requests.storage (DefaultClaimStorage) when absent.
func DefaultClaimSpec(s *v1.PersistentVolumeClaimSpec) {
	if len(s.AccessModes) == 0 {
		s.AccessModes = []string{"ReadWriteOnce"}
	}
	if s.Resources == nil {
		s.Resources = &v1.VolumeResourceRequirements{}
	}
	if s.Resources.Requests == nil {
		s.Resources.Requests = map[string]string{}
	}
	if _, ok := s.Resources.Requests["storage"]; !ok {
		s.Resources.Requests["storage"] = DefaultClaimStorage
	}
}

func defaultClaim(c *v1.PersistentVolumeClaim) {
	if c.Spec == nil {
		c.Spec = &v1.PersistentVolumeClaimSpec{}
	}
	DefaultClaimSpec(c.Spec)
}

func defaultClaimTemplates(s *v1.StatefulSetSpec) {
	for _, t := range s.VolumeClaimTemplates {
		if t.Spec == nil {
			t.Spec = &v1.PersistentVolumeClaimSpec{}
		}
		DefaultClaimSpec(t.Spec)
	}
}

// ValidateClaimSpec checks a claim's (defaulted) spec.
func ValidateClaimSpec(s *v1.PersistentVolumeClaimSpec, p *field.Path) field.ErrorList {
	if s == nil {
		return field.ErrorList{field.Required(p, "")}
	}
	var errs field.ErrorList
	if len(s.AccessModes) == 0 {
		errs = append(errs, field.Required(p.Child("accessModes"), "at least 1 access mode is required"))
	}
	for i, m := range s.AccessModes {
		if !contains(ClaimAccessModes, m) {
			errs = append(errs, field.NotSupported(p.Child("accessModes").Index(i), m, ClaimAccessModes))
		}
	}
	rp := p.Child("resources")
	for name := range s.GetResources().GetLimits() {
		if name != "storage" {
			errs = append(errs, field.NotSupported(rp.Child("limits").Key(name), name, []string{"storage"}))
		}
	}
	for name := range s.GetResources().GetRequests() {
		if name != "storage" {
			errs = append(errs, field.NotSupported(rp.Child("requests").Key(name), name, []string{"storage"}))
		}
	}
	sp := rp.Child("requests").Key("storage")
	if v, ok := s.GetResources().GetRequests()["storage"]; !ok {
		errs = append(errs, field.Required(sp, ""))
	} else if q, err := resource.ParseQuantity(v); err != nil {
		errs = append(errs, field.Invalid(sp, v, "must be a quantity such as \"1Gi\" or \"500M\""))
	} else if q.Sign() <= 0 {
		errs = append(errs, field.Invalid(sp, v, "must be greater than zero"))
	}
	if v, ok := s.GetResources().GetLimits()["storage"]; ok {
		if _, err := resource.ParseQuantity(v); err != nil {
			errs = append(errs, field.Invalid(rp.Child("limits").Key("storage"), v, "must be a quantity such as \"1Gi\" or \"500M\""))
		}
	}
	if s.StorageClassName != nil && *s.StorageClassName != "" {
		for _, msg := range validation.IsDNS1123Subdomain(*s.StorageClassName) {
			errs = append(errs, field.Invalid(p.Child("storageClassName"), *s.StorageClassName, msg))
		}
	}
	if s.VolumeName != "" {
		for _, msg := range validation.IsDNS1123Subdomain(s.VolumeName) {
			errs = append(errs, field.Invalid(p.Child("volumeName"), s.VolumeName, msg))
		}
	}
	return errs
}

// validateStorage is Validate's part for claims and StatefulSets' claim
// templates.
func validateStorage(o Object) field.ErrorList {
	switch x := o.(type) {
	case *v1.PersistentVolumeClaim:
		return validateClaim(x)
	case *v1.StatefulSet:
		return validateClaimTemplates(x.GetMetadata().GetName(), x.GetSpec(), field.NewPath("spec"))
	}
	return nil
}

func validateClaim(c *v1.PersistentVolumeClaim) field.ErrorList {
	errs := ValidateClaimSpec(c.GetSpec(), field.NewPath("spec"))
	switch ph := c.GetStatus().GetPhase(); ph {
	case "", "Pending", "Bound", "Lost":
	default:
		errs = append(errs, field.NotSupported(field.NewPath("status", "phase"), ph, []string{"Pending", "Bound", "Lost"}))
	}
	for name, v := range c.GetStatus().GetCapacity() {
		if _, err := resource.ParseQuantity(v); err != nil {
			errs = append(errs, field.Invalid(field.NewPath("status", "capacity").Key(name), v, "must be a quantity"))
		}
	}
	return errs
}

// validateClaimUpdate: a claim's spec does not change after creation
// (Kubernetes allows growing a bound claim on an expandable storage class;
// kubelite's folders have no size to grow).
func validateClaimUpdate(n, o *v1.PersistentVolumeClaim) field.ErrorList {
	if !proto.Equal(n.GetSpec(), o.GetSpec()) {
		return field.ErrorList{field.Forbidden(field.NewPath("spec"), "spec is immutable after creation")}
	}
	return nil
}

// validateClaimSource checks a pod volume's persistentVolumeClaim: the
// claim name becomes a folder name on the node, so it must be a claim's
// name (a DNS subdomain: no "/", no "..", at most 253 characters).
func validateClaimSource(s *v1.PersistentVolumeClaimVolumeSource, p *field.Path) field.ErrorList {
	if s == nil {
		return nil
	}
	if s.ClaimName == "" {
		return field.ErrorList{field.Required(p.Child("claimName"), "")}
	}
	var errs field.ErrorList
	for _, msg := range validation.IsDNS1123Subdomain(s.ClaimName) {
		errs = append(errs, field.Invalid(p.Child("claimName"), s.ClaimName, msg))
	}
	return errs
}

// validateClaimTemplates checks a StatefulSet's volumeClaimTemplates: each
// a valid claim spec, and the claim name of the highest ordinal a valid
// object name (so no derived name, nor its folder, exceeds 253 bytes).
func validateClaimTemplates(name string, s *v1.StatefulSetSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	last := int(s.GetOrdinals().GetStart()) + int(s.GetReplicas()) - 1
	if last < 0 {
		last = 0
	}
	for i, t := range s.VolumeClaimTemplates {
		tp := p.Child("volumeClaimTemplates").Index(i)
		errs = append(errs, metavalidation.ValidateLabels(t.GetMetadata().GetLabels(), tp.Child("metadata", "labels"))...)
		errs = append(errs, ValidateClaimSpec(t.GetSpec(), tp.Child("spec"))...)
		tn := t.GetMetadata().GetName()
		if tn == "" || name == "" {
			continue
		}
		if cn := ClaimName(tn, name, last); len(validation.IsDNS1123Subdomain(cn)) > 0 {
			errs = append(errs, field.Invalid(tp.Child("metadata", "name"), tn,
				fmt.Sprintf("the claim name of ordinal %d, %q (%d characters), must be a valid object name of at most %d characters", last, shorten(cn), len(cn), validation.DNS1123SubdomainMaxLength)))
		}
	}
	return errs
}

func shorten(s string) string {
	if len(s) <= 40 {
		return s
	}
	return s[:37] + "..."
}

// PodClaimNames lists the claims a pod names in its volumes.
func PodClaimNames(p *v1.Pod) []string {
	var out []string
	for _, v := range p.GetSpec().GetVolumes() {
		if c := v.GetPersistentVolumeClaim(); c != nil && c.ClaimName != "" {
			out = append(out, c.ClaimName)
		}
	}
	return out
}

// PodUsesClaim reports whether the pod names claim ns/name in its volumes.
func PodUsesClaim(p *v1.Pod, ns, name string) bool {
	return p.GetMetadata().GetNamespace() == ns && slices.Contains(PodClaimNames(p), name)
}
