package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// machine describes where and when the benchmark ran.
type machine struct {
	CPU, Memory, Go, Kernel string
	CPUs                    int
	Start, End              time.Time
	// LoadStart and LoadEnd are /proc/loadavg's 1, 5 and 15 minute averages: the machine is shared.
	LoadStart, LoadEnd string
}

func describeMachine() machine {
	return machine{
		CPU:       procField("/proc/cpuinfo", "model name"),
		CPUs:      runtime.NumCPU(),
		Memory:    memTotal(),
		Go:        runtime.Version(),
		Kernel:    readTrimmed("/proc/sys/kernel/osrelease"),
		Start:     time.Now().UTC(),
		LoadStart: loadAverage(),
	}
}

// finish records the end of the run.
func (m *machine) finish() {
	m.End = time.Now().UTC()
	m.LoadEnd = loadAverage()
}

func loadAverage() string {
	fields := strings.Fields(readTrimmed("/proc/loadavg"))
	if len(fields) < 3 {
		return "unknown"
	}
	return strings.Join(fields[:3], " ")
}

func memTotal() string {
	kb, err := strconv.ParseFloat(strings.TrimSuffix(procField("/proc/meminfo", "MemTotal"), " kB"), 64)
	if err != nil {
		return "unknown"
	}
	return fmt.Sprintf("%.1f GiB", kb/(1<<20))
}

// procField returns the value of the first "key: value" line of a /proc file.
func procField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func readTrimmed(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(data))
}
