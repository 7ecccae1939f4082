//go:build race

package hll

// raceEnabled: the race detector's instrumentation adds allocations, so
// allocation counts are only asserted without it.
const raceEnabled = true
