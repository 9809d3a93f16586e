package raft

// maxReadBatch bounds how many ReadIndex and ReadLease calls the run loop
// takes in one turn.
const maxReadBatch = 1024

// drainReadIndexCh returns first and the calls already waiting behind it
// in readIndexCh, up to maxReadBatch, without blocking. Taking them in one
// turn of the run loop lets them share one verification round (leader.go)
// or one request to the leader (follower_read.go), and saves a turn of the
// run loop's select per call. The slice is reused by the next call.
func (r *Raft) drainReadIndexCh(first *readIndexFuture) []*readIndexFuture {
	batch := append(r.st.readBatch[:0], first)
	for len(batch) < maxReadBatch {
		select {
		case f := <-r.readIndexCh:
			batch = append(batch, f)
		default:
			r.st.readBatch = batch
			return batch
		}
	}
	r.st.readBatch = batch
	return batch
}
