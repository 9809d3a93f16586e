package raft

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/hashicorp/go-metrics"
)

// serverReadAhead is how many requests one incoming connection may have
// started (their first byte read) and not yet answered. It lets every
// request of a pipeline reach the node while the oldest is still being
// written to the log, so that the node stores them together instead of
// one fsync each; answers still leave in request order. It also bounds
// what a peer can make the server hold: at most this many decoded
// requests, each within MaxRPCBytes, per connection. An InstallSnapshot
// stops the reading until its body is consumed, since the body comes
// before the next request on the stream.
const serverReadAhead = 8

// pendingAnswer is a request handed to the node, waiting for its answer.
type pendingAnswer struct {
	q *answerQueue
	// body is the InstallSnapshot body reader, nil for other requests.
	body io.Reader
	// resume, set with body, is closed once the body is consumed (or the
	// connection failed), which lets the reader go on to the next request.
	resume   chan struct{}
	labels   []metrics.Label
	enqueued time.Time
	// respCh is the request's RPC.RespChan, for answers sent on it
	// rather than through Respond (deliver).
	respCh chan RPCResponse
	// resp is the node's answer once answered is set. Both are guarded by
	// q.mu.
	resp     RPCResponse
	answered bool
}

// answerQueue connects a connection's reader (readRequests) to its writer
// (writeAnswers). The node answers a request through RPC.Respond, which
// calls deliver on its pendingAnswer: the writer is woken when the oldest
// request has its answer, and when a request arrives only if nothing was
// pending (it then watches the request's RespChan, on which code written
// for the reference may answer instead). Under load a request costs the
// writer one wake-up, and answers that are ready together leave together.
type answerQueue struct {
	// mu guards pending, closed, idle and every pendingAnswer's resp and
	// answered: the reader, the writer and whichever node goroutine
	// answers use them.
	mu sync.Mutex
	// pending holds the requests handed to the node and not yet taken by
	// the writer, in request order.
	pending []*pendingAnswer
	// closed is set when the reader stops.
	closed bool
	// idle is set while the writer sleeps with nothing pending; the next
	// push wakes it (an answer sent on RespChan does not).
	idle bool
	// wake (one slot) is signalled when the oldest pending request gets its
	// answer and when the reader stops.
	wake chan struct{}
	// slots holds one token per request started and not yet answered: the
	// reader puts one in before it reads a request, the writer takes one
	// out after writing an answer.
	slots chan struct{}
	// done is closed when the writer stops: after the last answer, or
	// after a failure.
	done chan struct{}
	// err is the writer's failure, if any; read after done is closed.
	err error
}

func newAnswerQueue(readAhead int) *answerQueue {
	return &answerQueue{
		pending: make([]*pendingAnswer, 0, readAhead),
		wake:    make(chan struct{}, 1),
		slots:   make(chan struct{}, readAhead),
		done:    make(chan struct{}),
	}
}

// push queues a request before it is handed to the node. It wakes the
// writer only if the writer sleeps with nothing pending (idle): then it
// must start watching the request's RespChan.
func (q *answerQueue) push(a *pendingAnswer) {
	a.q = q
	q.mu.Lock()
	q.pending = append(q.pending, a)
	wake := q.idle
	q.idle = false
	q.mu.Unlock()
	if wake {
		q.signal()
	}
}

// close records that the reader stopped; the writer ends once every
// pending request is answered.
func (q *answerQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.signal()
}

func (q *answerQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// deliver takes the node's answer (rpcAnswerer, transport.go). It never
// blocks.
func (a *pendingAnswer) deliver(resp RPCResponse) {
	q := a.q
	q.mu.Lock()
	a.resp, a.answered = resp, true
	head := len(q.pending) > 0 && q.pending[0] == a
	q.mu.Unlock()
	if head {
		q.signal()
	}
}

// takeAnswered removes the answered requests at the head of the queue and
// appends them to batch; last reports that the reader has stopped and
// nothing is left.
func (q *answerQueue) takeAnswered(batch []*pendingAnswer) (_ []*pendingAnswer, last bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for n < len(q.pending) && q.pending[n].answered {
		n++
	}
	batch = append(batch, q.pending[:n]...)
	clear(q.pending[:n])
	q.pending = append(q.pending[:0], q.pending[n:]...)
	return batch, q.closed && len(q.pending) == 0
}

// oldestWaiting returns the oldest request and its RespChan if it has no
// answer yet. With nothing pending it marks the writer idle and returns
// nils.
func (q *answerQueue) oldestWaiting() (*pendingAnswer, chan RPCResponse) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.pending) == 0 {
		q.idle = true
		return nil, nil
	}
	if q.pending[0].answered {
		return nil, nil
	}
	return q.pending[0], q.pending[0].respCh
}

// writeAnswers writes the node's answers in request order until the reader
// has stopped and every request it handed over is answered. Answers that
// are ready together leave in one flush. On a failure it logs why and
// closes the connection, so that the reader stops too, and leaves the
// remaining requests unanswered.
func (n *NetworkTransport) writeAnswers(c *serverConn, q *answerQueue) {
	defer close(q.done)
	var batch []*pendingAnswer
	for {
		var last bool
		batch, last = q.takeAnswered(batch[:0])
		if len(batch) == 0 {
			if last {
				return
			}
			// An answer sent on RespChan instead of through Respond
			// wakes the writer too, once its request is the oldest.
			oldest, respCh := q.oldestWaiting()
			select {
			case <-q.wake:
				continue
			case resp := <-respCh:
				oldest.deliver(resp)
				continue
			case <-n.shutdownCh:
				n.failAnswers(c, q, ErrTransportShutdown)
				return
			}
		}
		if err := n.writeBatch(c, batch); err != nil {
			n.failAnswers(c, q, err)
			return
		}
		clear(batch)
	}
}

// writeBatch writes answers and flushes them, releasing their slots.
func (n *NetworkTransport) writeBatch(c *serverConn, batch []*pendingAnswer) error {
	for i, a := range batch {
		if err := n.writeAnswer(c, a); err != nil {
			return err
		}
		if a.resume != nil || i == len(batch)-1 {
			if err := c.enc.flushResponses(); err != nil {
				return err
			}
		}
		if a.resume != nil {
			// The node has answered and the rest of the body is drained:
			// the next request may be read.
			close(a.resume)
		}
		<-a.q.slots
		c.endRequest()
	}
	return nil
}

// failAnswers ends the writer after a failure. The reader, waiting for a
// slot or for a snapshot body to be consumed, sees done and stops without
// reading again: after a failed answer (Shutdown included) the node may
// still be reading the body, and the stream is out of step anyway.
func (n *NetworkTransport) failAnswers(c *serverConn, q *answerQueue, err error) {
	q.err = err
	n.logConnEnd(c, err)
	_ = c.conn.Close()
}

// writeAnswer encodes the node's answer to one request, without
// flushing; for an InstallSnapshot it first drains what the node left of
// the body.
func (n *NetworkTransport) writeAnswer(c *serverConn, a *pendingAnswer) error {
	if a.body != nil {
		// The snapshot bytes the node did not read are still on the
		// stream, before the next request.
		if _, err := io.Copy(io.Discard, a.body); err != nil {
			return fmt.Errorf("draining snapshot data: %w", err)
		}
	}
	if n.frameTimeout > 0 {
		_ = c.conn.SetWriteDeadline(time.Now().Add(n.frameTimeout))
	}
	resp := a.resp // written before answered was set, under q.mu
	errText := ""
	if resp.Error != nil {
		errText = resp.Error.Error()
	}
	if err := c.enc.encodeResponse(errText, resp.Response); err != nil {
		return err
	}
	metrics.MeasureSinceWithLabels(keyNetRPCRespond, a.enqueued, a.labels)
	return nil
}
