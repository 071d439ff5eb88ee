//go:build race

package httpnet_test

// raceEnabled: the tests are built with -race.
const raceEnabled = true
