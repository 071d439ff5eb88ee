package wal

import (
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestGroupSyncerConcurrent: many goroutines append durable and lazy records;
// every done is called exactly once, in append order, and everything is
// durable after Close. Run with -race.
func TestGroupSyncerConcurrent(t *testing.T) {
	for _, k := range fsKinds {
		t.Run(k.name, func(t *testing.T) {
			o := k.opts(t)
			m, _ := o.FS.(*MemFS)
			l, _ := openLog(t, o)
			c := NewGroupSyncer(l, GroupSyncerOptions{OnFatal: func(err error) { t.Errorf("OnFatal(%v)", err) }})

			const goroutines, perGoroutine = 16, 60
			var (
				mu       sync.Mutex
				doneLog  []Pos              // positions in the order done was called
				appended = map[Pos]string{} // position -> payload
				wg       sync.WaitGroup
			)
			for g := range goroutines {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range perGoroutine {
						p := payload(g*1000+i, 20+(g*7+i*13)%400)
						durable := (g+i)%3 != 0
						ch := make(chan error, 1)
						pos, err := c.Append([]byte(p), durable, func(pos Pos, err error) {
							mu.Lock()
							doneLog = append(doneLog, pos)
							mu.Unlock()
							ch <- err
						})
						if err != nil {
							t.Errorf("Append: %v", err)
							return
						}
						mu.Lock()
						appended[pos] = p
						mu.Unlock()
						if durable {
							// Like a coordinator waiting for its decision record.
							if err := <-ch; err != nil {
								t.Errorf("done: %v", err)
							}
						}
					}
				}()
			}
			wg.Wait()
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Append([]byte("late"), true, nil); err == nil {
				t.Fatal("Append after Close succeeded")
			}
			mustClose(t, l)

			if len(doneLog) != goroutines*perGoroutine || len(appended) != len(doneLog) {
				t.Fatalf("%d done calls for %d appends", len(doneLog), len(appended))
			}
			for i := 1; i < len(doneLog); i++ {
				if !doneLog[i-1].Less(doneLog[i]) {
					t.Fatalf("done %d for %v after done for %v: not in append order", i, doneLog[i], doneLog[i-1])
				}
			}
			if m != nil {
				m.Crash() // only synced data counts
			}
			got := replayAll(t, o)
			if len(got) != len(doneLog) {
				t.Fatalf("replayed %d records, appended %d", len(got), len(doneLog))
			}
			for i, r := range got {
				if r.pos != doneLog[i] || r.payload != appended[r.pos] {
					t.Fatalf("record %d: replayed %v %.20q, done order %v %.20q", i, r.pos, r.payload, doneLog[i], appended[doneLog[i]])
				}
			}
		})
	}
}

// fakeClock lets a test fire the syncer's lazy timer by hand.
type fakeClock struct {
	armed chan time.Duration // receives the duration of each timer armed
	fire  chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{armed: make(chan time.Duration, 10), fire: make(chan time.Time)}
}

func (f *fakeClock) Now() time.Time { return time.Unix(1000, 0) }
func (f *fakeClock) NewTimer(d time.Duration) (<-chan time.Time, func() bool) {
	f.armed <- d
	return f.fire, func() bool { return true }
}

// doneRecorder collects done calls in order.
type doneRecorder struct {
	mu    sync.Mutex
	calls []string
	ch    chan string
}

func newDoneRecorder() *doneRecorder { return &doneRecorder{ch: make(chan string, 100)} }

func (d *doneRecorder) done(name string) func(Pos, error) {
	return func(p Pos, err error) {
		s := fmt.Sprintf("%s:%v", name, err)
		d.mu.Lock()
		d.calls = append(d.calls, s)
		d.mu.Unlock()
		d.ch <- s
	}
}

func (d *doneRecorder) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.calls)
}

// TestGroupSyncerLazy: a lazy record never causes a sync by itself; it is
// synced when its timer fires, or with the next durable record, in order.
func TestGroupSyncerLazy(t *testing.T) {
	m, o := memOptions()
	l, _ := openLog(t, o)
	clk := newFakeClock()
	c := newGroupSyncer(l, GroupSyncerOptions{LazyFlushInterval: time.Second, OnFatal: func(err error) { t.Errorf("OnFatal(%v)", err) }}, clk)
	rec := newDoneRecorder()

	if _, err := c.Append([]byte("lazy 1"), false, rec.done("lazy 1")); err != nil {
		t.Fatal(err)
	}
	if d := <-clk.armed; d != time.Second {
		t.Fatalf("lazy timer armed for %v, want 1s", d)
	}
	// The syncer armed the timer instead of syncing: nothing is done.
	if n := rec.count(); n != 0 {
		t.Fatalf("%d done calls before any sync", n)
	}
	clk.fire <- time.Time{}
	if got := <-rec.ch; got != "lazy 1:<nil>" {
		t.Fatalf("done: %s", got)
	}

	// A lazy record rides along with the next durable one.
	c.Append([]byte("lazy 2"), false, rec.done("lazy 2"))
	<-clk.armed
	c.Append([]byte("durable"), true, rec.done("durable"))
	if a, b := <-rec.ch, <-rec.ch; a != "lazy 2:<nil>" || b != "durable:<nil>" {
		t.Fatalf("done calls %s, %s", a, b)
	}

	// Close syncs a lazy record whose timer never fired.
	c.Append([]byte("lazy 3"), false, rec.done("lazy 3"))
	<-clk.armed
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if got := <-rec.ch; got != "lazy 3:<nil>" {
		t.Fatalf("done: %s", got)
	}
	m.Crash()
	got := replayAll(t, o)
	if len(got) != 4 || got[3].payload != "lazy 3" {
		t.Fatalf("replayed %s", brief(got))
	}
}

// TestGroupSyncerFatal: a failed sync calls OnFatal once, fails every pending
// done, and makes later Appends fail at once.
func TestGroupSyncerFatal(t *testing.T) {
	m, o := memOptions()
	l, _ := openLog(t, o)
	clk := newFakeClock()
	var fatal []error
	fatalCh := make(chan struct{}, 10)
	c := newGroupSyncer(l, GroupSyncerOptions{OnFatal: func(err error) { fatal = append(fatal, err); fatalCh <- struct{}{} }}, clk)
	rec := newDoneRecorder()
	c.Append([]byte("ok"), true, rec.done("ok"))
	if got := <-rec.ch; got != "ok:<nil>" {
		t.Fatalf("done: %s", got)
	}

	m.SetFaults(MemFSFaults{SyncErr: func(string) error { return syscall.EIO }})
	c.Append([]byte("lazy"), false, rec.done("lazy"))
	<-clk.armed
	c.Append([]byte("durable"), true, rec.done("durable"))
	for _, name := range []string{"lazy", "durable"} {
		if got := <-rec.ch; got[:len(name)+1] != name+":" || got == name+":<nil>" {
			t.Fatalf("done: %s, want %s with an error", got, name)
		}
	}
	<-fatalCh
	_, err := c.Append([]byte("after"), true, rec.done("after"))
	wantErr(t, "Append after failure", err, ErrSyncFailed)
	wantErr(t, "Close", c.Close(), ErrSyncFailed)
	if len(fatal) != 1 {
		t.Fatalf("OnFatal called %d times", len(fatal))
	}
	wantErr(t, "OnFatal's error", fatal[0], ErrSyncFailed)
	if n := rec.count(); n != 3 {
		t.Fatalf("%d done calls, want 3", n)
	}
	l.Close()
}

// TestGroupSyncerRefusals: Append reports refusals at once and never calls done.
func TestGroupSyncerRefusals(t *testing.T) {
	m, o := memOptions()
	l, _ := openLog(t, o)
	c := NewGroupSyncer(l, GroupSyncerOptions{OnFatal: func(err error) { t.Errorf("OnFatal(%v)", err) }})
	never := func(Pos, error) { t.Error("done called for a refused record") }
	_, err := c.Append(make([]byte, 5000), true, never)
	wantErr(t, "too large", err, ErrRecordTooLarge)

	// Fill segment 1 and spare 2, then the disk is full for segment 3.
	m.SetFaults(MemFSFaults{WriteErr: func(name string, _ int64, _ int) error {
		if name == segPath(o, 3)+tmpExt {
			return syscall.ENOSPC
		}
		return nil
	}})
	ch := make(chan error, 2)
	for i := range 2 {
		if _, err := c.Append([]byte(payload(i, 4000)), true, func(_ Pos, err error) { ch <- err }); err != nil {
			t.Fatal(err)
		}
		if err := <-ch; err != nil {
			t.Fatal(err)
		}
	}
	_, err = c.Append([]byte(payload(3, 4000)), true, never)
	wantErr(t, "disk full", err, ErrNoSpace)
	m.SetFaults(MemFSFaults{})
	if _, err := c.Append([]byte(payload(4, 4000)), true, func(_ Pos, err error) { ch <- err }); err != nil {
		t.Fatal(err)
	}
	if err := <-ch; err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = c.Append([]byte("x"), true, never)
	wantErr(t, "after Close", err, ErrClosed)
	mustClose(t, l)
	if got := replayAll(t, o); len(got) != 3 {
		t.Fatalf("replayed %s", brief(got))
	}
}

func TestNewGroupSyncerNeedsOnFatal(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("NewGroupSyncer without OnFatal did not panic")
		}
	}()
	_, o := memOptions()
	l, _ := openLog(t, o)
	NewGroupSyncer(l, GroupSyncerOptions{})
}

// gatedFS holds the creation of a spare segment (its .tmp file) while gate is
// set, until release is closed; everything else goes straight to the MemFS.
type gatedFS struct {
	*MemFS
	gate    atomic.Bool
	entered chan struct{} // a build reached the gate
	release chan struct{}
}

func (g *gatedFS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	if strings.HasSuffix(name, tmpExt) && g.gate.Load() {
		g.entered <- struct{}{}
		<-g.release
	}
	return g.MemFS.OpenFile(name, flag, perm)
}

// TestGroupSyncerSyncsWhileSpareBuilds: preparing the next segment (writing and
// syncing a whole segment of zeros) does not hold up the syncs of appenders,
// and Close waits for it.
func TestGroupSyncerSyncsWhileSpareBuilds(t *testing.T) {
	m, o := memOptions()
	g := &gatedFS{MemFS: m, entered: make(chan struct{}, 1), release: make(chan struct{})}
	o.FS = g
	l, _ := openLog(t, o) // builds the first spare, ungated
	g.gate.Store(true)
	c := NewGroupSyncer(l, GroupSyncerOptions{OnFatal: func(err error) { t.Errorf("OnFatal: %v", err) }})
	rec := newDoneRecorder()
	// Fill the first segment so that an Append cuts to the spare; the sync after
	// it starts the build of the next one, which the gate holds.
	payload := make([]byte, 1024)
	first := l.Segments()[0]
	for i := 0; l.Segments()[len(l.Segments())-1] == first; i++ {
		if _, err := c.Append(payload, true, rec.done(fmt.Sprint(i))); err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
		<-rec.ch
	}
	if _, err := c.Append(payload, true, rec.done("cut")); err != nil {
		t.Fatal(err)
	}
	<-rec.ch
	<-g.entered // the build is running, held at the gate
	if _, err := c.Append([]byte("while building"), true, rec.done("while building")); err != nil {
		t.Fatal(err)
	}
	if got := <-rec.ch; got != "while building:<nil>" {
		t.Fatalf("done: %s", got)
	}
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while the spare was being built", err)
	default:
	}
	close(g.release)
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Log.Close: %v", err)
	}
	last := l.Segments()[len(l.Segments())-1]
	if _, err := m.ReadFile(l.path(last + 1)); err != nil {
		t.Fatalf("the spare after segment %d was not built: %v", last, err)
	}
}
