package cmd

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/kubelite/kubelite/internal/api"
	"github.com/kubelite/kubelite/internal/client"
	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

// claimTable is kubectl's printPersistentVolumeClaim.
func claimTable() table {
	return table{
		headers: []string{"NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS MODES", "STORAGECLASS", "AGE"},
		wide:    []string{"VOLUMEMODE"},
		row: func(o api.Object, now time.Time) []string {
			c := o.(*v1.PersistentVolumeClaim)
			status := c.GetStatus().GetPhase()
			if c.Metadata.DeletionTimestamp != nil {
				status = "Terminating"
			}
			capacity, modes := "", ""
			if c.GetStatus().GetPhase() == "Bound" {
				capacity = c.GetStatus().GetCapacity()["storage"]
				modes = accessModesString(c.GetStatus().GetAccessModes())
			}
			return []string{c.Metadata.Name, status, c.GetSpec().GetVolumeName(), capacity, modes, c.GetSpec().GetStorageClassName(), age(c.Metadata.CreationTimestamp, now)}
		},
		wideRow: func(api.Object, time.Time) []string { return []string{"Filesystem"} },
	}
}

// accessModesString abbreviates as kubectl does: RWO,ROX,RWX,RWOP.
func accessModesString(modes []string) string {
	short := map[string]string{"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX", "ReadWriteOncePod": "RWOP"}
	var out []string
	for _, m := range modes {
		if s, ok := short[m]; ok {
			out = append(out, s)
		}
	}
	return strings.Join(out, ",")
}

// claimUsers lists the pods of the claim's namespace that name it.
func claimUsers(g *globals, c *client.Client, cl *v1.PersistentVolumeClaim) ([]string, error) {
	ctx, cancel := g.ctx()
	defer cancel()
	pods, _, err := c.Pods().List(ctx, &v1.ListRequest{Namespace: cl.Metadata.Namespace})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range pods {
		if api.PodUsesClaim(p, cl.Metadata.Namespace, cl.Metadata.Name) {
			out = append(out, p.Metadata.Name)
		}
	}
	sort.Strings(out)
	return out, nil
}

func describeClaim(g *globals, c *client.Client, s *section, cl *v1.PersistentVolumeClaim) error {
	m := cl.Metadata
	s.line(0, "StorageClass", cl.GetSpec().GetStorageClassName())
	status := cl.GetStatus().GetPhase()
	if m.DeletionTimestamp != nil {
		status = fmt.Sprintf("Terminating (lasts %s)", time.Since(m.DeletionTimestamp.AsTime()).Round(time.Second))
	}
	s.line(0, "Status", status)
	s.line(0, "Volume", cl.GetSpec().GetVolumeName())
	mapLines(s, 0, "Labels", m.Labels)
	mapLines(s, 0, "Annotations", m.Annotations)
	s.line(0, "Finalizers", "["+strings.Join(m.Finalizers, " ")+"]")
	capacity, modes := "", ""
	if cl.GetStatus().GetPhase() == "Bound" {
		capacity = cl.GetStatus().GetCapacity()["storage"]
		modes = accessModesString(cl.GetStatus().GetAccessModes())
	}
	s.line(0, "Capacity", capacity)
	s.line(0, "Access Modes", modes)
	s.line(0, "VolumeMode", "Filesystem")
	users, err := claimUsers(g, c, cl)
	if err != nil {
		return err
	}
	if len(users) == 0 {
		s.line(0, "Used By", "<none>")
	}
	for i, u := range users {
		key := "Used By"
		if i > 0 {
			key = ""
		}
		s.line(0, key, u)
	}
	var owners []string
	for _, r := range m.OwnerReferences {
		owners = append(owners, r.Kind+"/"+r.Name)
	}
	if len(owners) == 0 {
		owners = []string{"<none>"}
	}
	s.line(0, "Owners", strings.Join(owners, ", "))
	return nil
}

// describeSetClaims prints a StatefulSet's claim templates and the claims
// made from them, as the API holds them.
func describeSetClaims(g *globals, c *client.Client, s *section, st *v1.StatefulSet) error {
	spec := st.GetSpec()
	s.text(0, "Volume Claims:")
	if len(spec.GetVolumeClaimTemplates()) == 0 {
		s.text(1, "<none>")
		return nil
	}
	ctx, cancel := g.ctx()
	defer cancel()
	claims, _, err := c.PersistentVolumeClaims().List(ctx, &v1.ListRequest{Namespace: st.Metadata.Namespace})
	if err != nil {
		return err
	}
	sort.Slice(claims, func(i, j int) bool { return claims[i].Metadata.Name < claims[j].Metadata.Name })
	for _, t := range spec.GetVolumeClaimTemplates() {
		n := t.GetMetadata().GetName()
		s.line(1, "Name", n)
		s.line(1, "StorageClass", t.GetSpec().GetStorageClassName())
		mapLines(s, 1, "Labels", t.GetMetadata().GetLabels())
		s.line(1, "Capacity", t.GetSpec().GetResources().GetRequests()["storage"])
		s.line(1, "Access Modes", "["+strings.Join(t.GetSpec().GetAccessModes(), " ")+"]")
		prefix := n + "-" + st.Metadata.Name + "-"
		var made []string
		for _, cl := range claims {
			rest, ok := strings.CutPrefix(cl.Metadata.Name, prefix)
			if !ok || rest == "" || strings.Trim(rest, "0123456789") != "" {
				continue
			}
			status := cl.GetStatus().GetPhase()
			if cl.Metadata.DeletionTimestamp != nil {
				status = "Terminating"
			}
			made = append(made, fmt.Sprintf("%s (%s)", cl.Metadata.Name, status))
		}
		if len(made) == 0 {
			made = []string{"<none>"}
		}
		s.line(1, "Claims", strings.Join(made, ", "))
	}
	return nil
}
