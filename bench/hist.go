package bench

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// hist is a log-linear latency histogram (HDR-style) in nanoseconds: values below
// histSub are exact, larger ones fall in buckets of relative width at most 1/histSub
// (0.8 %). Memory is fixed (histBuckets counters) whatever the number of values, and
// Record is one atomic add per counter, so many workers share one hist.
type hist struct {
	counts [histBuckets]atomic.Uint64
	n      atomic.Uint64
	sum    atomic.Uint64 // nanoseconds; overflows after ~584 years of latency
	max    atomic.Int64
}

const (
	histSubBits = 7
	histSub     = 1 << histSubBits // sub-buckets per power of two
	// histBuckets covers values up to 2^(histShiftMax+histSubBits+1) ns (~39 h).
	histShiftMax = 40
	histBuckets  = (histShiftMax + 2) * histSub
)

func histIndex(v int64) int {
	if v < histSub {
		return int(max(v, 0))
	}
	shift := bits.Len64(uint64(v)) - (histSubBits + 1)
	if shift > histShiftMax {
		return histBuckets - 1
	}
	return shift*histSub + int(uint64(v)>>shift)
}

// histValue is the middle of bucket i.
func histValue(i int) int64 {
	if i < 2*histSub {
		return int64(i)
	}
	shift := i/histSub - 1
	top := int64(i - shift*histSub)
	return top<<shift + (int64(1)<<shift)/2
}

// Record adds one latency.
func (h *hist) Record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	}
	h.counts[histIndex(v)].Add(1)
	h.n.Add(1)
	h.sum.Add(uint64(v))
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			break
		}
	}
}

// Count is how many values were recorded.
func (h *hist) Count() uint64 { return h.n.Load() }

// Quantile returns the value at quantile q (0 < q <= 1): the smallest bucket value with
// at least ceil(q*n) values at or below it. Zero when empty. The top quantile is the
// exact maximum.
func (h *hist) Quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	rank = min(max(rank, 1), n)
	if rank == n {
		return time.Duration(h.max.Load())
	}
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			return time.Duration(min(histValue(i), h.max.Load()))
		}
	}
	return time.Duration(h.max.Load())
}

// Mean is the exact mean.
func (h *hist) Mean() time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	return time.Duration(h.sum.Load() / n)
}

// Max is the exact maximum.
func (h *hist) Max() time.Duration { return time.Duration(h.max.Load()) }

// ms converts a duration to float milliseconds, for reports.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
