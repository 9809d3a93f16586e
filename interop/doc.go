// Package interop holds the tests that prove QuorumKit Raft is a drop-in
// replacement for github.com/hashicorp/raft: the same exported API, the
// same bytes on the wire and on disk, and mixed clusters of both libraries
// over real TCP. It is a separate module so that the main module never
// depends on the reference implementation.
package interop
