package proctest_test

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/skynode/skynode/test/proctest"
)

// states returns the state letter of every thread of pid.
func states(t *testing.T, pid int) string {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	for _, task := range tasks {
		b, err := os.ReadFile(dir + "/" + task.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		out.WriteByte(s[strings.LastIndexByte(s, ')')+2])
	}
	return out.String()
}

// Freeze returns only once every thread of a busy multi-threaded process
// is stopped; Thaw lets it run again. The process is this test binary run
// again as a child whose goroutines spin on every CPU.
func TestFreezeWaitsUntilStopped(t *testing.T) {
	if os.Getenv("PROCTEST_SPIN") == "1" {
		for range runtime.GOMAXPROCS(0) + 1 {
			go func() {
				//lint:ignore SA5002 the child spins on purpose: it is the busy process Freeze stops
				for {
				}
			}()
		}
		select {}
	}
	if _, err := os.Stat("/proc/self/task"); err != nil {
		t.Skip("no /proc: Freeze reads thread states from it")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestFreezeWaitsUntilStopped$")
	cmd.Env = append(os.Environ(), "PROCTEST_SPIN=1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	pid := cmd.Process.Pid
	checkFor(t, 10*time.Second, func() error {
		if s := states(t, pid); len(s) < 3 || !strings.Contains(s, "R") {
			return fmt.Errorf("child not spinning yet: thread states %q", s)
		}
		return nil
	})
	for range 20 {
		if err := proctest.Freeze(pid, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		if s := states(t, pid); strings.Trim(s, "Tt") != "" {
			t.Fatalf("Freeze returned with thread states %q", s)
		}
		if err := proctest.Thaw(pid); err != nil {
			t.Fatal(err)
		}
	}
	checkFor(t, 10*time.Second, func() error {
		if s := states(t, pid); strings.Trim(s, "Tt") == "" {
			return fmt.Errorf("still stopped after Thaw: %q", s)
		}
		return nil
	})
}

func checkFor(t *testing.T, total time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(total)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
