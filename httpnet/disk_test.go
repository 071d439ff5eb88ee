package httpnet_test

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dtc-project/dtc/client"
	"github.com/dtc-project/dtc/httpnet"
	"github.com/dtc-project/dtc/httpnet/apiserver"
	"github.com/dtc-project/dtc/wal"
)

// capFS is a wal.FS over a MemFS with a disk of limited size: a write that would make
// the files' sizes add up to more than its capacity fails with ENOSPC, as on a real full
// disk, and removing a file gives its space back. It also counts the bytes written.
type capFS struct {
	wal.FS
	mu      sync.Mutex
	sizes   map[string]int64
	used    int64
	cap     int64 // -1: unlimited
	written int64
}

func newCapFS() *capFS { return &capFS{FS: wal.NewMemFS(), sizes: map[string]int64{}, cap: -1} }

// fill makes the disk full: nothing may grow any more (another tenant took the rest).
func (c *capFS) fill() { c.mu.Lock(); c.cap = c.used; c.mu.Unlock() }

// free gives the disk room again.
func (c *capFS) free() { c.mu.Lock(); c.cap = -1; c.mu.Unlock() }

func (c *capFS) bytesWritten() int64 { c.mu.Lock(); defer c.mu.Unlock(); return c.written }

// grow reserves room for name to reach size, or reports ENOSPC.
func (c *capFS) grow(name string, size int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.sizes[name]
	if size <= old {
		return nil
	}
	if c.cap >= 0 && c.used+size-old > c.cap {
		return syscall.ENOSPC
	}
	c.used += size - old
	c.sizes[name] = size
	return nil
}

func (c *capFS) OpenFile(name string, flag int, perm fs.FileMode) (wal.File, error) {
	f, err := c.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	if flag&os.O_TRUNC != 0 {
		c.mu.Lock()
		c.used -= c.sizes[name]
		c.sizes[name] = 0
		c.mu.Unlock()
	}
	return &capFile{File: f, fs: c, name: name}, nil
}

func (c *capFS) Remove(name string) error {
	if err := c.FS.Remove(name); err != nil {
		return err
	}
	c.mu.Lock()
	c.used -= c.sizes[name]
	delete(c.sizes, name)
	c.mu.Unlock()
	return nil
}

func (c *capFS) Rename(oldname, newname string) error {
	if err := c.FS.Rename(oldname, newname); err != nil {
		return err
	}
	c.mu.Lock()
	c.used -= c.sizes[newname]
	c.sizes[newname] = c.sizes[oldname]
	delete(c.sizes, oldname)
	c.mu.Unlock()
	return nil
}

type capFile struct {
	wal.File
	fs   *capFS
	name string
}

func (f *capFile) WriteAt(p []byte, off int64) (int, error) {
	if err := f.fs.grow(f.name, off+int64(len(p))); err != nil {
		return 0, err
	}
	n, err := f.File.WriteAt(p, off)
	f.fs.mu.Lock()
	f.fs.written += int64(n)
	f.fs.mu.Unlock()
	return n, err
}

func (f *capFile) Truncate(size int64) error {
	if err := f.fs.grow(f.name, size); err != nil {
		return err
	}
	return f.File.Truncate(size)
}

// outcomeParticipant answers ACK to every prepare and records each transaction's phase-2
// outcome by its txn_id.
type outcomeParticipant struct {
	srv      *httptest.Server
	mu       sync.Mutex
	outcomes map[string]string // txn_id -> "commit" | "rollback"
}

func newOutcomeParticipant(t *testing.T) *outcomeParticipant {
	p := &outcomeParticipant{outcomes: map[string]string{}}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			TxnID string `json:"txn_id"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		w.Header().Set("Content-Type", "application/json")
		switch path.Base(r.URL.Path) {
		case "prepare":
			fmt.Fprint(w, `{"vote":"ACK"}`)
		case "commit", "rollback":
			p.mu.Lock()
			p.outcomes[req.TxnID] = path.Base(r.URL.Path)
			p.mu.Unlock()
			fmt.Fprintf(w, `{"state":%q}`, map[string]string{"commit": "committed", "rollback": "aborted"}[path.Base(r.URL.Path)])
		default:
			fmt.Fprint(w, `{"state":"unknown"}`)
		}
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// outcome returns what the participant was told for the transaction the client knows as id.
func (p *outcomeParticipant) outcome(id string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	for txnID, o := range p.outcomes {
		if txnID == id || strings.HasPrefix(txnID, id+"@") {
			return o
		}
	}
	return ""
}

// TestFullDiskRecoversByItself: the disk fills while transactions keep coming; dtc
// answers 503 log_unavailable, and while the disk stays full and no request comes it
// writes nothing (no checkpoint fills what little is left). Once space is freed, with no
// restart and no request to wake it, the transactions whose records waited are committed
// at their participant and new ones commit again; they survive a restart.
func TestFullDiskRecoversByItself(t *testing.T) {
	p := newOutcomeParticipant(t)
	disk := newCapFS()
	c := startCoord(t, "/data", func(o *httpnet.Options) {
		o.FS = disk
		o.SegmentSizeBytes = 32 << 10
		o.Shards = 2
		o.Engine.DoneMax = 20 // a checkpoint fits in a segment
		o.CompactInterval = 10 * time.Millisecond
	})
	c.waitReady()
	body := `{"participants":["` + p.srv.URL + `/prepare"]}`
	post := func(query string) (int, string, http.Header, string) {
		st, resp, hdr := c.post(query, body)
		var v client.View
		_ = json.Unmarshal([]byte(resp), &v)
		return st, resp, hdr, v.ID
	}
	for range 60 {
		if st, resp, _, _ := post(""); st != http.StatusOK {
			t.Fatalf("before the disk filled: %d %s", st, resp)
		}
	}

	disk.fill()
	var (
		begun      []string
		st         int
		resp       string
		hdr        http.Header
		id         string
		refused503 bool
	)
	for range 3000 {
		if st, resp, hdr, id = post("?wait=false"); st != http.StatusAccepted {
			refused503 = st == http.StatusServiceUnavailable
			break
		}
		begun = append(begun, id)
	}
	if !refused503 || !strings.Contains(resp, apiserver.CodeLogUnavailable) || hdr.Get("Retry-After") == "" {
		t.Fatalf("disk full: %d %s, want 503 log_unavailable with Retry-After", st, resp)
	}
	t.Logf("%d transactions begun before the first 503", len(begun))

	// Full and idle: after the compactor's first ticks (which may write one checkpoint
	// into the reserved segment), nothing more is written.
	time.Sleep(200 * time.Millisecond)
	before := disk.bytesWritten()
	time.Sleep(300 * time.Millisecond) // 30 compaction ticks
	if w := disk.bytesWritten() - before; w != 0 {
		t.Errorf("a full, idle coordinator wrote %d bytes in 30 compaction ticks, want none", w)
	}

	disk.free()
	for _, id := range begun {
		eventually(t, id+" committed at its participant once there is room, without a request or a restart",
			func() bool { return p.outcome(id) == "commit" })
	}
	var after []string
	for range 3 {
		st, resp, _, id := post("")
		if st != http.StatusOK {
			t.Fatalf("after space was freed: %d %s", st, resp)
		}
		after = append(after, id)
	}

	c.restart(nil)
	c.waitReady()
	for _, id := range after {
		v, err := c.cli.Get(t.Context(), id)
		if err != nil || v.State != client.StateCommitted {
			t.Fatalf("%s after a restart: %+v %v, want committed", id, v, err)
		}
	}
}

// TestIdleCoordinatorWritesNoCheckpoints: a coordinator with nothing to do writes
// nothing, even when one checkpoint is larger than a segment (which used to make each
// checkpoint start a new segment, and each new segment ask for another checkpoint).
func TestIdleCoordinatorWritesNoCheckpoints(t *testing.T) {
	f := newFakeParticipant(t)
	disk := newCapFS()
	c := startCoord(t, "/data", func(o *httpnet.Options) {
		o.FS = disk
		o.SegmentSizeBytes = 4 << 10
		o.Shards = 1
		o.CompactInterval = 10 * time.Millisecond
	})
	c.waitReady()
	body := `{"participants":["` + f.url() + `"]}`
	for range 40 { // 40 remembered transactions: a checkpoint of ~3 segments
		if st, resp, _ := c.post("", body); st != http.StatusOK {
			t.Fatalf("%d %s", st, resp)
		}
	}
	// Let the last phase 2 end and the compactor catch up, then watch 50 ticks.
	deadline := time.Now().Add(10 * time.Second)
	var last int64 = -1
	for time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		w := disk.bytesWritten()
		if w == last {
			break
		}
		last = w
	}
	before := disk.bytesWritten()
	time.Sleep(500 * time.Millisecond)
	if w := disk.bytesWritten() - before; w != 0 {
		t.Fatalf("an idle coordinator wrote %d bytes in 50 compaction ticks, want none", w)
	}
}

// TestFullDiskFreesItsOwnSegments: when it is dtc's own old segments that fill the disk,
// dtc gets out by itself with the disk still full: the log refuses a record, the shards
// checkpoint into the log's reserved segment (a checkpoint here is larger than what is
// left of a segment), the compactor deletes the segments that made obsolete, and new
// transactions commit again; nobody frees anything for it.
func TestFullDiskFreesItsOwnSegments(t *testing.T) {
	p := newOutcomeParticipant(t)
	disk := newCapFS()
	c := startCoord(t, "/data", func(o *httpnet.Options) {
		o.FS = disk
		o.SegmentSizeBytes = 64 << 10
		o.Shards = 1
		o.Engine.DoneMax = 100   // a checkpoint of ~40 KiB: more than a full segment's rest
		o.CompactSegments = 1000 // no checkpoint for the log's length: only for the full disk
		o.CompactInterval = 10 * time.Millisecond
	})
	c.waitReady()
	body := `{"participants":["` + p.srv.URL + `/prepare"]}`
	segments := func() (n int, oldest string) {
		names, err := disk.ReadDir("/data")
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range names {
			if strings.HasSuffix(name, ".wal") {
				if n == 0 {
					oldest = name
				}
				n++
			}
		}
		return n, oldest
	}
	for i := 0; ; i++ {
		if n, _ := segments(); n >= 5 { // 3 with records, the spare, the reserve
			break
		}
		if i == 2000 {
			t.Fatal("the log did not grow to 3 segments")
		}
		if st, resp, _ := c.post("", body); st != http.StatusOK {
			t.Fatalf("before the disk filled: %d %s", st, resp)
		}
	}
	_, oldest := segments()

	disk.fill()
	// Until the log runs out of room: submissions are refused (503) while the checkpoint
	// that frees the old segments is written into the reserve, or, when that was quicker
	// than the submissions (the records of wait=false submissions are appended after
	// their answers), the old segments are gone already: only the full disk makes a
	// checkpoint here (CompactSegments), and only a checkpoint deletes segments.
	full := false
	for range 3000 {
		st, resp, _ := c.post("?wait=false", body)
		if st == http.StatusServiceUnavailable && strings.Contains(resp, apiserver.CodeLogUnavailable) {
			full = true
			break
		}
		if st != http.StatusAccepted {
			t.Fatalf("filling the disk: %d %s", st, resp)
		}
		if _, now := segments(); now > oldest {
			full = true
			break
		}
	}
	if !full {
		t.Fatal("the log never ran out of room: no refusal, no checkpoint")
	}
	eventually(t, "a transaction commits again with the disk still full", func() bool {
		st, _, _ := c.post("", body)
		return st == http.StatusOK
	})
	eventually(t, "the segments before the checkpoint deleted", func() bool {
		_, now := segments()
		return now > oldest
	})
	for range 20 { // and it goes on: the space freed is used again
		if st, resp, _ := c.post("", body); st != http.StatusOK {
			t.Fatalf("after dtc freed its segments: %d %s", st, resp)
		}
	}
}
