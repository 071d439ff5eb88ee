package wal

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkGroupSyncer measures group commit on real files: each appender
// appends a 200-byte durable record and waits for its done before the next,
// like a coordinator shard waiting for a decision record. With many
// appenders, one fsync covers many records.
//
//	go test -run '^$' -bench GroupSyncer -benchtime 3000x ./wal
func BenchmarkGroupSyncer(b *testing.B) {
	for _, appenders := range []int{1, 64} {
		b.Run(fmt.Sprintf("appenders=%d", appenders), func(b *testing.B) {
			cfs := NewSyncCountingFS(OSFS(), nil)
			l, err := Open(Options{FS: cfs, Dir: b.TempDir()}, nil)
			if err != nil {
				b.Fatal(err)
			}
			c := NewGroupSyncer(l, GroupSyncerOptions{OnFatal: func(err error) { b.Error(err) }})
			record := []byte(payload(1, 200))
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start, syncs0 := time.Now(), cfs.syncs.Load()
			for range appenders {
				wg.Add(1)
				go func() {
					defer wg.Done()
					done := make(chan error, 1)
					for next.Add(1) <= int64(b.N) {
						if _, err := c.Append(record, true, func(_ Pos, err error) { done <- err }); err != nil {
							b.Error(err)
							return
						}
						if err := <-done; err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			elapsed, syncs := time.Since(start), cfs.syncs.Load()-syncs0
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "records/s")
			b.ReportMetric(float64(syncs)/elapsed.Seconds(), "syncs/s")
			b.ReportMetric(float64(b.N)/float64(max(syncs, 1)), "records/sync")
			if err := c.Close(); err != nil {
				b.Fatal(err)
			}
			if err := l.Close(); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkAppend measures the cost of Append alone: checksum and framing
// into the buffer. The syncs that keep the buffer bounded are not timed.
func BenchmarkAppend(b *testing.B) {
	m := NewMemFS()
	l, err := Open(Options{FS: m, Dir: "/log", SegmentSizeBytes: 16 << 20}, nil)
	if err != nil {
		b.Fatal(err)
	}
	record := []byte(payload(1, 200))
	b.SetBytes(int64(len(record)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := l.Append(record); err != nil {
			b.Fatal(err)
		}
		if i%4096 == 4095 {
			// Keep the buffer and the MemFS small, as checkpoints would.
			b.StopTimer()
			if err := l.Sync(); err != nil {
				b.Fatal(err)
			}
			segs := l.Segments()
			if err := l.RemoveBefore(segs[len(segs)-1]); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	}
	b.StopTimer()
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
}
