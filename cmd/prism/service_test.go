package main

// Running as a service: the config path from -c and $PRISM_CONFIG, the
// sd_notify messages a Type=notify unit waits for, the unit file checked
// by systemd-analyze, and the unit run by a real systemd where there is one.

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/testpeer"
)

func TestConfigFromShortFlagAndEnv(t *testing.T) {
	example := exampleConfig(t)
	if code, out, stderr := runPrism(t, "validate", "-c", example); code != 0 || !strings.Contains(out, ": ok (") {
		t.Errorf("validate -c: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	t.Setenv(configEnv, example)
	if code, out, stderr := runPrism(t, "validate"); code != 0 || !strings.Contains(out, example+": ok (") {
		t.Errorf("validate with %s: exit %d, stdout %q, stderr %q", configEnv, code, out, stderr)
	}
	// A flag wins over the environment.
	bad := filepath.Join(t.TempDir(), "missing.yaml")
	if code, _, stderr := runPrism(t, "validate", "-config", bad); code != 1 || !strings.Contains(stderr, "missing.yaml") {
		t.Errorf("validate -config over %s: exit %d, stderr %q; want the flag's file to be read", configEnv, code, stderr)
	}
	t.Setenv(configEnv, "")
	if code, _, stderr := runPrism(t, "validate"); code != 2 || !strings.Contains(stderr, configEnv) {
		t.Errorf("validate with no config named: exit %d, stderr %q; want 2 and a hint about %s", code, stderr, configEnv)
	}
}

func TestVersionNamesCommit(t *testing.T) {
	code, out, _ := runPrism(t, "version")
	if code != 0 || !strings.Contains(out, "(commit ") {
		t.Fatalf("version: exit %d, %q; want the commit (or \"commit unknown\")", code, out)
	}
}

// TestRunNotifiesServiceManager: with NOTIFY_SOCKET set (as systemd does
// for Type=notify), prism sends READY=1 once listening, RELOADING=1 then
// READY=1 around SIGHUP, and STOPPING=1 when SIGTERM starts the drain.
func TestRunNotifiesServiceManager(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	next := func(want string) string {
		t.Helper()
		buf := make([]byte, 1024)
		_ = ln.SetReadDeadline(time.Now().Add(20 * time.Second))
		n, err := ln.Read(buf)
		if err != nil {
			t.Fatalf("waiting for %s: %v", want, err)
		}
		msg := string(buf[:n])
		if !strings.HasPrefix(msg, want+"\n") {
			t.Fatalf("notification %q, want %s first", msg, want)
		}
		return msg
	}
	cfg, _ := writeRunConfig(t, testpeer.Echo(t), filepath.Join(t.TempDir(), "s.log"), "1s")
	d := startDaemon(t, cfg)
	if msg := next("READY=1"); !strings.Contains(msg, "STATUS=serving 1 apps") {
		t.Errorf("READY message %q has no STATUS", msg)
	}
	d.signal(t, syscall.SIGHUP)
	if msg := next("RELOADING=1"); !strings.Contains(msg, "MONOTONIC_USEC=") {
		t.Errorf("RELOADING message %q has no MONOTONIC_USEC", msg)
	}
	next("READY=1")
	d.signal(t, syscall.SIGTERM)
	next("STOPPING=1")
	if code := d.exit(t, 20*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
}

// unitFor copies deploy/prism.service with ExecStart pointing at the binary
// under test and the given config.
func unitFor(t *testing.T, dir, name, cfg string) string {
	t.Helper()
	b, err := os.ReadFile("../../deploy/prism.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := strings.ReplaceAll(string(b), "/usr/local/bin/prism", prismBin)
	if cfg != "" {
		unit = strings.ReplaceAll(unit, "/etc/prism/prism.yaml", cfg)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestUnitFileVerifies: systemd-analyze verify reports nothing about
// deploy/prism.service, and does report a unit broken on purpose (so the
// check can fail).
func TestUnitFileVerifies(t *testing.T) {
	bin := testpeer.Need(t, "systemd-analyze")
	dir := t.TempDir()
	unit := unitFor(t, dir, "prism.service", "")
	out, err := exec.Command(bin, "verify", unit).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify deploy/prism.service: %v\n%s", err, out)
	}
	b, _ := os.ReadFile(unit)
	broken := filepath.Join(dir, "broken.service")
	if err := os.WriteFile(broken, []byte(strings.Replace(string(b), "Type=notify", "Type=notifyy", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, _ := exec.Command(bin, "verify", broken).CombinedOutput(); !strings.Contains(string(out), "notifyy") {
		t.Errorf("systemd-analyze verify did not flag a bad Type=: %s", out)
	}
	// The unit asks for what the issue requires of a service.
	for _, want := range []string{"Type=notify", "ExecReload=", "LimitNOFILE=", "AmbientCapabilities=CAP_NET_BIND_SERVICE", "NoNewPrivileges=yes", "DynamicUser=yes"} {
		if !strings.Contains(string(b), "\n"+want) {
			t.Errorf("deploy/prism.service has no %s line", want)
		}
	}
}

// TestUnitUnderSystemd starts the unit under the machine's systemd, reloads
// it and stops it. It needs a running systemd (and root), which containers
// and CI machines usually lack, so it skips there.
func TestUnitUnderSystemd(t *testing.T) {
	if _, err := os.Stat("/run/systemd/system"); err != nil {
		t.Skip("no running systemd on this machine (/run/systemd/system is missing): unit not started; systemd-analyze verify still checks it")
	}
	if os.Geteuid() != 0 {
		t.Skip("starting a system unit needs root")
	}
	systemctl := testpeer.Need(t, "systemctl")
	// The unit runs as a dynamic user: the binary and config must be readable by it.
	dir, err := os.MkdirTemp("/run", "prism-unit-test-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "prism")
	if b, err := os.ReadFile(prismBin); err != nil || os.WriteFile(bin, b, 0o755) != nil {
		t.Fatalf("copy binary: %v", err)
	}
	origin := testpeer.Echo(t)
	cfg, listen := writeRunConfig(t, origin, "/var/log/prism/spectrum.log", "1s")
	cfgCopy := filepath.Join(dir, "prism.yaml")
	if b, err := os.ReadFile(cfg); err != nil || os.WriteFile(cfgCopy, b, 0o644) != nil {
		t.Fatalf("copy config: %v", err)
	}
	name := "prism-test-" + filepath.Base(dir) + ".service"
	b, _ := os.ReadFile("../../deploy/prism.service")
	unit := strings.ReplaceAll(strings.ReplaceAll(string(b), "/usr/local/bin/prism", bin), "/etc/prism/prism.yaml", cfgCopy)
	unitPath := filepath.Join("/run/systemd/system", name)
	if err := os.WriteFile(unitPath, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = exec.Command(systemctl, "stop", name).Run()
		os.Remove(unitPath)
		_ = exec.Command(systemctl, "daemon-reload").Run()
	}()
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(systemctl, args...).CombinedOutput(); err != nil {
			t.Fatalf("systemctl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("daemon-reload")
	run("start", name) // returns once prism sent READY=1 (Type=notify)
	c := echoOnce(t, listen, "through the unit")
	c.Close()
	run("reload", name) // waits for RELOADING=1 … READY=1
	run("is-active", "--quiet", name)
	run("stop", name)
}
