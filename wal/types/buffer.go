package types

// PooledBuffer carries the bytes of one entry read from a segment. When
// CloseFn is set the bytes belong to a pool: after Close they must not be
// touched. When CloseFn is nil the buffer belongs to whoever received it.
type PooledBuffer struct {
	Bs      []byte
	CloseFn func()
}

// Close hands the bytes back to their pool, if they came from one. Call it
// once, when neither Bs nor any slice of it is needed any more. It always
// returns nil.
func (b *PooledBuffer) Close() error {
	if b.CloseFn != nil {
		b.CloseFn()
	}
	return nil
}
