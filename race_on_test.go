//go:build race

package raft

// raceDetector reports that the tests run under the race detector, where
// the property tests that compare the hand-written wire path with the
// codec take a tenth of their cases (the codec's reflection is slow there).
const raceDetector = true
