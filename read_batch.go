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

// maxVerifyBatch bounds how many VerifyLeader calls the run loop takes in
// one turn.
const maxVerifyBatch = 1024

// drainVerifyCh returns first and the VerifyLeader calls already waiting
// behind it in verifyCh, up to maxVerifyBatch, without blocking: they
// share one verification round (onVerifies, leader.go), since a heartbeat
// sent after the round starts was sent after each of them was made.
func (r *Raft) drainVerifyCh(first *verifyFuture) []*verifyFuture {
	batch := []*verifyFuture{first}
	for len(batch) < maxVerifyBatch {
		select {
		case f := <-r.verifyCh:
			batch = append(batch, f)
		default:
			return batch
		}
	}
	return batch
}
