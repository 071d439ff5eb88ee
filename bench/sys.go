package bench

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
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
	// HeapBytes is the Go heap in use (runtime.MemStats.HeapAlloc): live objects plus
	// garbage not yet collected, unless taken right after a GC.
	HeapBytes uint64 `json:"heap_bytes"`
	// Goroutines is runtime.NumGoroutine.
	Goroutines int `json:"goroutines"`
}

// takeSample reads the memory figures now; with gc it first runs a collection, so that
// HeapBytes is the live heap.
func takeSample(start time.Time, gc bool) Sample {
	if gc {
		runtime.GC()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	at := time.Since(start)
	return Sample{
		At:         at,
		AtSeconds:  at.Seconds(),
		RSSBytes:   rssBytes(),
		HeapBytes:  ms.HeapAlloc,
		Goroutines: runtime.NumGoroutine(),
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
