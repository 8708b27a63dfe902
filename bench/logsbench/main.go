// Command logsbench measures `prism logs filter` and `prism logs convert`
// against what people use today on the same ndjson file: jq. It writes a
// spectrum_events file the way a prism log job does (internal/logs/logstest),
// then runs each tool pinned to one CPU and reports records per second per
// core (records divided by the process's user+system CPU time, so a tool
// that waits or spreads over cores is not flattered) and the ratio to jq.
//
//	go run ./bench/logsbench [-records 200000] [-runs 3] [-cpu 1]
//
// Every run is bounded by the file size and a timeout; nothing touches the
// network.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/prismproxy/prism/bench/internal/proc"
	"github.com/prismproxy/prism/internal/logs/logstest"
	"github.com/prismproxy/prism/internal/render"
)

// The jq programs: a filter, and the reshaping of a Spectrum record into
// EdgeOne's field names that a user writes by hand (prism's convert does
// more: session ids, reasons, deltas).
const (
	jqFilter  = `select(.Status >= 400)`
	jqReshape = `{ClientRealIP: .ClientIP, ClientRegion: (.ClientCountry | ascii_upcase), ` +
		`ConnectTimeStamp: (.ConnectTimestamp / 1e9 | floor | todate), ` +
		`DisconnetReason: (if .Event == "connect" then "-" else "down:net_exception_peer_close" end), ` +
		`DisconnetTimeStamp: (.DisconnectTimestamp / 1e9 | floor | todate), EdgeIP: "-", ForwardPort: -1, ` +
		`ForwardProtocol: (.ClientProto | ascii_upcase), LogTimeStamp: (.Timestamp / 1e9 | floor | todate), ` +
		`ReceivedBytes: .ClientBytes, SentBytes: .OriginBytes, ServiceID: .Application, SessionID: "-"}`
	prismFilter = `{"where":{"key":"Status","operator":"geq","value":400}}`
)

type task struct {
	name string
	argv func(prism, file string) []string
}

func main() {
	records := flag.Int("records", 200000, "records in the generated spectrum_events file")
	runs := flag.Int("runs", 3, "runs per tool, alternating between the tools; the one with the least CPU time is reported")
	cpu := flag.String("cpu", "1", "CPU to pin each tool to (taskset -c); empty: no pinning")
	flag.Parse()
	if err := run(*records, *runs, *cpu); err != nil {
		fmt.Fprintln(os.Stderr, "logsbench:", err)
		os.Exit(1)
	}
}

func run(records, runs int, cpu string) error {
	root, err := proc.RepoRoot()
	if err != nil {
		return err
	}
	jq, err := exec.LookPath("jq")
	if err != nil {
		return fmt.Errorf("jq is not installed (Debian package jq)")
	}
	dir, err := os.MkdirTemp("", "logsbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	prism, err := proc.BuildPrism(root, dir)
	if err != nil {
		return err
	}
	// a spectrum_events session is two records
	data, err := logstest.Render(render.Spectrum, logstest.Sessions(records/2, 1), render.Options{})
	if err != nil {
		return err
	}
	file := filepath.Join(dir, "spectrum_events.ndjson")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		return err
	}
	n := bytes.Count(data, []byte("\n"))
	taskset := ""
	if cpu != "" {
		if taskset, err = exec.LookPath("taskset"); err != nil {
			taskset = ""
		}
	}
	host, _ := os.Hostname()
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("logsbench %s: %d spectrum_events records (%.1f MB), %s/%s, %d CPUs, host %s, load average %s\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), n, float64(len(data))/1e6, runtime.GOOS, runtime.GOARCH,
		runtime.NumCPU(), host, strings.Join(strings.Fields(string(load))[:3], " "))
	jqVersion, _ := exec.Command(jq, "--version").Output()
	fmt.Printf("jq: %s\n\n", strings.TrimSpace(string(jqVersion)))

	pairs := []struct {
		what    string
		jq      []string
		prism   []string
		sameOut bool // both write the same records (count compared)
	}{
		{"filter Status >= 400", []string{jq, "-c", jqFilter, file}, []string{prism, "logs", "filter", "--from", "spectrum_events", "--filter", prismFilter, file}, true},
		{"reshape to edgeone_l4", []string{jq, "-c", jqReshape, file}, []string{prism, "logs", "convert", "--from", "spectrum_events", "--to", "edgeone_l4", file}, false},
		{"convert to ocsf (no jq counterpart)", nil, []string{prism, "logs", "convert", "--from", "spectrum_events", "--to", "ocsf", file}, false},
	}
	fmt.Println("| task | tool | records/s per core | CPU s | wall s | output records | ×jq |")
	fmt.Println("|---|---|---:|---:|---:|---:|---:|")
	for _, p := range pairs {
		// the tools run alternately, so that a busy moment of a shared
		// machine does not fall on one of them only
		var jqBest, prBest result
		for i := range runs {
			if p.jq != nil {
				r, err := measure(taskset, cpu, p.jq, dir)
				if err != nil {
					return fmt.Errorf("%s: jq: %w", p.what, err)
				}
				if i == 0 || r.cpu < jqBest.cpu {
					jqBest = r
				}
			}
			r, err := measure(taskset, cpu, p.prism, dir)
			if err != nil {
				return fmt.Errorf("%s: prism: %w", p.what, err)
			}
			if i == 0 || r.cpu < prBest.cpu {
				prBest = r
			}
		}
		ratio := "–"
		rate := float64(n) / prBest.cpu.Seconds()
		if p.jq != nil {
			jqRate := float64(n) / jqBest.cpu.Seconds()
			ratio = fmt.Sprintf("%.1f", rate/jqRate)
			fmt.Printf("| %s | jq | %.0f | %.2f | %.2f | %d | 1 |\n", p.what, jqRate, jqBest.cpu.Seconds(), jqBest.wall.Seconds(), jqBest.lines)
			if p.sameOut && prBest.lines != jqBest.lines {
				return fmt.Errorf("%s: jq wrote %d records, prism %d", p.what, jqBest.lines, prBest.lines)
			}
		}
		fmt.Printf("| %s | prism logs | %.0f | %.2f | %.2f | %d | %s |\n", p.what, rate, prBest.cpu.Seconds(), prBest.wall.Seconds(), prBest.lines, ratio)
	}
	return nil
}

type result struct {
	cpu, wall time.Duration
	lines     int
}

// measure runs argv once, its output to a file, and returns its CPU and
// wall time and how many records it wrote.
func measure(taskset, cpu string, argv []string, dir string) (result, error) {
	outPath := filepath.Join(dir, "out")
	out, err := os.Create(outPath)
	if err != nil {
		return result{}, err
	}
	args := argv
	if taskset != "" {
		args = append([]string{taskset, "-c", cpu}, argv...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Stdout = out
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	err = cmd.Run()
	wall := time.Since(start)
	out.Close()
	if err != nil {
		return result{}, fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
	}
	ps := cmd.ProcessState
	b, err := os.ReadFile(outPath)
	if err != nil {
		return result{}, err
	}
	return result{cpu: ps.UserTime() + ps.SystemTime(), wall: wall, lines: bytes.Count(b, []byte("\n"))}, nil
}
