package deployment

import (
	"testing"

	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

func TestCalculateStatusAndComplete(t *testing.T) {
	d := dep(4, "25%", "25%")
	d.Metadata = &v1.ObjectMeta{Generation: 7}
	oldRS := &v1.ReplicaSet{Spec: &v1.ReplicaSetSpec{Replicas: new(int32)}, Status: &v1.ReplicaSetStatus{Replicas: 1, ReadyReplicas: 1, AvailableReplicas: 1}}
	four := int32(4)
	newRS := &v1.ReplicaSet{Spec: &v1.ReplicaSetSpec{Replicas: &four}, Status: &v1.ReplicaSetStatus{Replicas: 4, ReadyReplicas: 3, AvailableReplicas: 3}}
	st := CalculateStatus(d, []*v1.ReplicaSet{oldRS, newRS}, newRS)
	if st.Replicas != 5 || st.UpdatedReplicas != 4 || st.ReadyReplicas != 4 || st.AvailableReplicas != 4 || st.UnavailableReplicas != 0 || st.ObservedGeneration != 7 {
		t.Errorf("status = %v", st)
	}
	if complete(d, newRS, []*v1.ReplicaSet{oldRS, newRS}) {
		t.Error("complete while an old pod remains and one new pod is unavailable")
	}
	oldRS.Status = &v1.ReplicaSetStatus{}
	newRS.Status = &v1.ReplicaSetStatus{Replicas: 4, ReadyReplicas: 4, AvailableReplicas: 4}
	if !complete(d, newRS, []*v1.ReplicaSet{oldRS, newRS}) {
		t.Error("not complete with every new pod available and no old one")
	}
}
