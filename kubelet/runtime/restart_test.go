package runtime

import (
	"context"
	"os"
	"strconv"
	"testing"
)

func TestRestartInSameCgroup(t *testing.T) {
	cg, _ := DetectCgroups("test-r" + strconv.Itoa(os.Getpid()))
	r := newRuntime(t, t.TempDir(), cg)
	for i := 0; i < 3; i++ {
		c, err := r.Start(context.Background(), ContainerSpec{PodUID: "u1", Name: "c", Command: []string{"sh", "-c", "echo x; exit 3"}, WorkingDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		e := waitExit(t, c)
		t.Logf("attempt %d: %+v", c.Attempt, e)
		if e.Code != 3 {
			t.Errorf("attempt %d exit %+v", c.Attempt, e)
		}
	}
	r.RemovePod("u1")
}
