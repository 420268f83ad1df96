//go:build race

package ergotest

// RaceEnabled reports whether the race detector is on.
const RaceEnabled = true
