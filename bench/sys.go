package bench

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"time"
)

// Sample is one look at the process's memory.
type Sample struct {
	// At is the time since the phase began.
	At time.Duration `json:"-"`
	// AtSeconds is At, for JSON.
	AtSeconds float64 `json:"at_s"`
	// RSSBytes is the resident set size (/proc/self/status VmRSS; 0 where unknown).
	RSSBytes int64 `json:"rss_bytes"`
	// HeapBytes is the Go heap: in a sample taken with a GC, the bytes that GC found
	// live (runtime/metrics /gc/heap/live:bytes); otherwise runtime.MemStats.HeapAlloc,
	// live objects plus garbage not yet collected.
	HeapBytes uint64 `json:"heap_bytes"`
	// Goroutines is runtime.NumGoroutine.
	Goroutines int `json:"goroutines"`
	// CPUCores and OtherCores: the cores this process, and all the others, kept busy
	// on average since the previous sample (0 for the first).
	CPUCores   float64 `json:"cpu_cores"`
	OtherCores float64 `json:"other_cores"`

	cpu, machine time.Duration // totals so far, for the next sample's averages
}

// takeSample reads the memory figures now; with gc it first runs a collection, so that
// HeapBytes is the live heap. HeapAlloc right after runtime.GC is not: under load, what
// was allocated while the collection ran (marked live, as the GC must) and since it
// ended is in it too. At the soak's ~150 MB/s of allocation that was several MiB of
// noise, which drifted upward with the load's queues and failed a heap that pprof
// showed flat.
func takeSample(start time.Time, gc bool) Sample {
	if gc {
		runtime.GC()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	heap := ms.HeapAlloc
	if gc {
		live := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		metrics.Read(live)
		if live[0].Value.Kind() == metrics.KindUint64 {
			heap = live[0].Value.Uint64()
		}
	}
	at := time.Since(start)
	return Sample{
		At:         at,
		AtSeconds:  at.Seconds(),
		RSSBytes:   rssBytes(),
		HeapBytes:  heap,
		Goroutines: runtime.NumGoroutine(),
		cpu:        usage().cpu,
		machine:    machineBusy(),
	}
}

// since fills s's CPU averages over the time since prev.
func (s *Sample) since(prev Sample) {
	d := (s.At - prev.At).Seconds()
	if d <= 0 {
		return
	}
	cpu := (s.cpu - prev.cpu).Seconds()
	s.CPUCores = cpu / d
	if s.machine > 0 {
		s.OtherCores = max(0, ((s.machine-prev.machine).Seconds()-cpu)/d)
	}
}

// rssBytes reads VmRSS from /proc/self/status; 0 if it cannot.
func rssBytes() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Bytes()
		rest, ok := bytes.CutPrefix(line, []byte("VmRSS:"))
		if !ok {
			continue
		}
		fields := bytes.Fields(rest) // "12345 kB"
		if len(fields) == 0 {
			return 0
		}
		kb, err := strconv.ParseInt(string(fields[0]), 10, 64)
		if err != nil {
			return 0
		}
		return kb << 10
	}
	return 0
}

// machineBusy is the CPU time all processes have used so far, from /proc/stat (user,
// nice, system, irq, softirq; not idle, iowait or steal); 0 where unknown. Linux
// reports it in USER_HZ ticks, 100 per second on every architecture Go supports.
func machineBusy() time.Duration {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := bytes.Cut(data, []byte("\n"))
	fields := bytes.Fields(line)
	if len(fields) < 8 || string(fields[0]) != "cpu" {
		return 0
	}
	var ticks int64
	for _, i := range []int{1, 2, 3, 6, 7} { // user nice system irq softirq
		n, err := strconv.ParseInt(string(fields[i]), 10, 64)
		if err != nil {
			return 0
		}
		ticks += n
	}
	const userHz = 100
	return time.Duration(ticks) * time.Second / userHz
}

// procUsage is a snapshot of what the process has used; see usage and readProcIO.
type procUsage struct {
	cpu         time.Duration
	vcsw, ivcsw int64 // context switches
	syscr       int64 // read-like syscalls (read, recvfrom, pread, …)
	syscw       int64 // write-like syscalls (write, sendto, pwrite, …)
	mallocs     int64 // Go heap objects allocated
	allocBytes  int64 // Go heap bytes allocated
	gcs         int64 // GC cycles
}

// snapshot takes the process's usage now, with its IO syscall counts and Go
// allocations. (ReadMemStats stops the world for a moment: call it at phase
// boundaries only.)
func snapshot() procUsage {
	u := usage()
	u.syscr, u.syscw = readProcIO()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	u.mallocs, u.allocBytes, u.gcs = int64(ms.Mallocs), int64(ms.TotalAlloc), int64(ms.NumGC)
	return u
}

func (a procUsage) sub(b procUsage) procUsage {
	return procUsage{a.cpu - b.cpu, a.vcsw - b.vcsw, a.ivcsw - b.ivcsw, a.syscr - b.syscr, a.syscw - b.syscw,
		a.mallocs - b.mallocs, a.allocBytes - b.allocBytes, a.gcs - b.gcs}
}

func (a procUsage) add(b procUsage) procUsage {
	return procUsage{a.cpu + b.cpu, a.vcsw + b.vcsw, a.ivcsw + b.ivcsw, a.syscr + b.syscr, a.syscw + b.syscw,
		a.mallocs + b.mallocs, a.allocBytes + b.allocBytes, a.gcs + b.gcs}
}

// readProcIO reads the read and write syscall counts of /proc/self/io; zeros where
// unknown.
func readProcIO() (syscr, syscw int64) {
	data, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0, 0
	}
	for _, line := range bytes.Split(data, []byte("\n")) {
		name, val, ok := bytes.Cut(line, []byte(": "))
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(string(bytes.TrimSpace(val)), 10, 64)
		if err != nil {
			continue
		}
		switch string(name) {
		case "syscr":
			syscr = n
		case "syscw":
			syscw = n
		}
	}
	return syscr, syscw
}
