package kafkatest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lumenhq/lumen/testing/servicetest"
)

// RestartBroker stops the real broker that testing/services started
// (LUMEN_TEST_KAFKA_PID) with SIGTERM, waits until it has exited, keeps
// it down for down, and starts it again as it was (the same command line,
// environment, directory and log, so the same data), then waits until it
// accepts connections. The test must hold the broker (DisturbedCluster).
// The new process carries the services' marker, so testing/services/down
// stops it, and its pid replaces the old one in the pid file and in
// LUMEN_TEST_KAFKA_PID.
func RestartBroker(t *testing.T, down time.Duration) {
	t.Helper()
	pid, err := strconv.Atoi(servicetest.Addr(t, "LUMEN_TEST_KAFKA_PID"))
	if err != nil {
		t.Fatalf("kafkatest: LUMEN_TEST_KAFKA_PID: %v", err)
	}
	proc := fmt.Sprintf("/proc/%d/", pid)
	argv, err := nulFields(proc + "cmdline")
	if err != nil {
		t.Fatalf("kafkatest: the broker (pid %d) is not running: %v", pid, err)
	}
	env, err := nulFields(proc + "environ")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.Readlink(proc + "cwd")
	if err != nil {
		t.Fatal(err)
	}
	logPath, err := os.Readlink(proc + "fd/1")
	if err != nil {
		t.Fatal(err)
	}
	marker := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "LUMEN_SERVICE_MARKER="); ok {
			marker = v
		}
	}
	if !strings.HasPrefix(marker, "kafka@") {
		t.Fatalf("kafkatest: pid %d is not the broker testing/services started (marker %q)", pid, marker)
	}

	start := time.Now()
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for syscall.Kill(pid, 0) == nil {
		if time.Since(start) > 2*time.Minute {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("kafkatest: the broker (pid %d) stopped in %v; down for %v", pid, time.Since(start).Round(time.Millisecond), down)
	time.Sleep(down) // the outage itself, the scenario's length: not a wait for a condition

	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env, cmd.Dir, cmd.Stdout, cmd.Stderr = env, dir, logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // outlives the test binary, as the services do
	if err := cmd.Start(); err != nil {
		t.Fatalf("kafkatest: restarting the broker: %v", err)
	}
	newPid := cmd.Process.Pid
	cmd.Process.Release()
	os.Setenv("LUMEN_TEST_KAFKA_PID", strconv.Itoa(newPid))
	pidFile := filepath.Join(strings.TrimPrefix(marker, "kafka@"), "kafka", "kafka.pid")
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(newPid)+"\n"), 0o644); err != nil {
		t.Logf("kafkatest: %v (testing/services/down still finds the broker by its marker)", err)
	}
	addr := os.Getenv("LUMEN_TEST_KAFKA")
	restarted := time.Now()
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if syscall.Kill(newPid, 0) != nil {
			t.Fatalf("kafkatest: the restarted broker (pid %d) exited; see %s", newPid, logPath)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("kafkatest: the broker is back (pid %d), listening %v after its start", newPid, time.Since(restarted).Round(time.Millisecond))
}

func nulFields(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, f := range bytes.Split(bytes.TrimRight(b, "\x00"), []byte{0}) {
		out = append(out, string(f))
	}
	if len(out) == 0 || out[0] == "" {
		return nil, fmt.Errorf("%s is empty", path)
	}
	return out, nil
}
