//go:build !race

package raft

// raceDetector reports that the tests run under the race detector
// (race_on_test.go).
const raceDetector = false
