package types

import "io"

// VFS is the file system beneath the default segment filer: the real one
// (package fs) in use, an in-memory one that can simulate crashes in tests.
type VFS interface {
	// ListDir returns the names of the files in dir, sorted. An error
	// means dir could not be read; an empty list, that it has no files.
	ListDir(dir string) ([]string, error)

	// Create makes a new file, failing if it exists, and preallocates
	// size bytes where the file system can. dir must exist.
	Create(dir, name string, size uint64) (WritableFile, error)

	// Delete removes a file that is no longer needed.
	Delete(dir, name string) error

	// OpenReader opens an existing file for reading. Nothing is checked
	// about its content.
	OpenReader(dir, name string) (ReadableFile, error)

	// OpenWriter opens an existing file for reading and writing. Nothing
	// is checked about its content.
	OpenWriter(dir, name string) (WritableFile, error)
}

// WritableFile can be read and written at any offset and made durable.
type WritableFile interface {
	io.WriterAt
	io.ReaderAt
	io.Closer

	Sync() error
}

// ReadableFile can be read at any offset.
type ReadableFile interface {
	io.ReaderAt
	io.Closer
}
