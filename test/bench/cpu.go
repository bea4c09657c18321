package main

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuUse is CPU time (user + system) in seconds by process: the control plane (kube-apiserver,
// etcd) and the manager are this program's children, and kubectl counts once it has exited. The
// machine key holds the busy time of every process on the machine: it is shared.
type cpuUse map[string]float64

// Keys of the CPU time of this program itself, of its children that have exited (kubectl), and of
// the whole machine.
const (
	self           = "bench"
	exitedChildren = "kubectl"
	machineKey     = "(machine)"
)

// clockTicks is the unit of /proc/PID/stat times: USER_HZ, 100 on Linux.
const clockTicks = 100

// cpuNow reads the CPU time of this program's running children from /proc, its own and its
// exited children's from getrusage, and the machine's from /proc/stat.
func cpuNow() cpuUse {
	out := cpuUse{machineKey: machineBusy()}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if comm, seconds, ok := childCPU(e.Name()); ok {
			out[comm] += seconds
		}
	}
	for key, who := range map[string]int{self: syscall.RUSAGE_SELF, exitedChildren: syscall.RUSAGE_CHILDREN} {
		var ru syscall.Rusage
		if syscall.Getrusage(who, &ru) == nil {
			out[key] = seconds(ru.Utime) + seconds(ru.Stime)
		}
	}
	return out
}

// childCPU reads /proc/PID/stat when PID is a child of this program.
func childCPU(pid string) (comm string, cpu float64, ok bool) {
	data, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return "", 0, false
	}
	// "PID (COMM) STATE PPID ... UTIME STIME ...": COMM may hold spaces, so split after its ")".
	s := string(data)
	open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || closing < open {
		return "", 0, false
	}
	fields := strings.Fields(s[closing+1:])
	if len(fields) < 13 || fields[1] != strconv.Itoa(os.Getpid()) {
		return "", 0, false
	}
	utime, err1 := strconv.ParseFloat(fields[11], 64)
	stime, err2 := strconv.ParseFloat(fields[12], 64)
	if err1 != nil || err2 != nil {
		return "", 0, false
	}
	return s[open+1 : closing], (utime + stime) / clockTicks, true
}

// machineBusy is the CPU time all processes of the machine spent so far: the first line of
// /proc/stat less idle, I/O wait and the time the hypervisor gave to other machines (steal).
func machineBusy() float64 {
	line, _, _ := strings.Cut(readTrimmed("/proc/stat"), "\n")
	fields := strings.Fields(line) // "cpu user nice system idle iowait irq softirq steal ..."
	busy := 0.0
	for i, f := range fields[1:min(len(fields), 9)] {
		ticks, err := strconv.ParseFloat(f, 64)
		if err == nil && i != 3 && i != 4 && i != 7 {
			busy += ticks
		}
	}
	return busy / clockTicks
}

func seconds(tv syscall.Timeval) float64 {
	return float64(tv.Sec) + float64(tv.Usec)/1e6
}

// since returns the CPU used since an earlier reading, keeping the processes that used any.
func (c cpuUse) since(earlier cpuUse) cpuUse { return delta(c, earlier, 0.005) }

// total is the CPU time of the processes this program knows (the machine left out).
func (c cpuUse) total() float64 {
	sum := 0.0
	for k, v := range c {
		if k != machineKey {
			sum += v
		}
	}
	return sum
}

// others is the CPU time of the machine's other processes: other people's work.
func (c cpuUse) others() float64 { return max(c[machineKey]-c.total(), 0) }

// describe reads "CPU etcd 1.5 s, kube-apiserver 13.1 s, manager 4.1 s: 1.6 of 2 cores busy;
// other processes 3.2 s".
func (c cpuUse) describe(wall time.Duration, cores int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(c)) {
		if k != machineKey {
			parts = append(parts, fmt.Sprintf("%s %.1f s", k, c[k]))
		}
	}
	return fmt.Sprintf("CPU %s: %.1f of %d cores busy; other processes on the machine %.1f s",
		strings.Join(parts, ", "), c.total()/wall.Seconds(), cores, c.others())
}

// without drops one process.
func (c cpuUse) without(name string) cpuUse {
	out := maps.Clone(c)
	delete(out, name)
	return out
}
