//go:build !unix

package httpnet_test

import "time"

// processCPU is unknown here: benchmarks report a CPU time of zero.
func processCPU() time.Duration { return 0 }
