package raft

import (
	"fmt"
	"io"
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
	respCh chan RPCResponse
	// body is the InstallSnapshot body reader, nil for other requests.
	body io.Reader
	// resume, set with body, is closed once the body is consumed (or the
	// connection failed), which lets the reader go on to the next request.
	resume   chan struct{}
	labels   []metrics.Label
	enqueued time.Time
	// resp is the answer once answered is set: the writer took it from
	// respCh while looking ahead (nextAnswered).
	resp     RPCResponse
	answered bool
}

// answerQueue connects a connection's reader (readRequests) to its writer
// (writeAnswers).
type answerQueue struct {
	// answers carries requests handed to the node, in order. The reader
	// closes it when it stops.
	answers chan *pendingAnswer
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
		answers: make(chan *pendingAnswer, readAhead),
		slots:   make(chan struct{}, readAhead),
		done:    make(chan struct{}),
	}
}

// writeAnswers writes the node's answers in request order until the reader
// closes the queue. Answers that are ready one after the other (a
// follower answers every request its log write held at once) leave in one
// flush. On a failure it logs why and closes the connection, so that the
// reader stops too, and leaves the remaining requests unanswered.
func (n *NetworkTransport) writeAnswers(c *serverConn, q *answerQueue) {
	defer close(q.done)
	var next *pendingAnswer
	for {
		a := next
		next = nil
		if a == nil {
			var ok bool
			if a, ok = <-q.answers; !ok {
				return
			}
		}
		err := n.writeAnswer(c, a)
		if err == nil && (a.resume != nil || !q.nextAnswered(&next)) {
			err = c.enc.flushResponses()
		}
		if err != nil {
			// The reader, waiting for a slot or for a snapshot body to be
			// consumed, sees done and stops without reading again: after
			// a failed answer (Shutdown included) the node may still be
			// reading the body, and the stream is out of step anyway.
			q.err = err
			n.logConnEnd(c, err)
			_ = c.conn.Close()
			return
		}
		if a.resume != nil {
			// The node has answered and the rest of the body is drained:
			// the next request may be read.
			close(a.resume)
		}
		<-q.slots
		c.endRequest()
	}
}

// nextAnswered takes the next queued request into *next, if there is one,
// and reports whether the node has answered it already (its answer is then
// kept in it).
func (q *answerQueue) nextAnswered(next **pendingAnswer) bool {
	select {
	case a, ok := <-q.answers:
		if !ok {
			return false
		}
		*next = a
	default:
		return false
	}
	select {
	case resp := <-(*next).respCh:
		(*next).resp, (*next).answered = resp, true
		return true
	default:
		return false
	}
}

// writeAnswer waits for the node's answer to one request and encodes it,
// without flushing.
func (n *NetworkTransport) writeAnswer(c *serverConn, a *pendingAnswer) error {
	resp, err := n.awaitAnswer(a)
	if err != nil {
		return err
	}
	if n.frameTimeout > 0 {
		_ = c.conn.SetWriteDeadline(time.Now().Add(n.frameTimeout))
	}
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

// awaitAnswer waits for the node's answer and, for an InstallSnapshot,
// drains what the node left of the body.
func (n *NetworkTransport) awaitAnswer(a *pendingAnswer) (RPCResponse, error) {
	resp := a.resp
	if !a.answered {
		select {
		case resp = <-a.respCh:
		case <-n.shutdownCh:
			return RPCResponse{}, ErrTransportShutdown
		}
	}
	if a.body != nil {
		// The snapshot bytes the node did not read are still on the
		// stream, before the next request.
		if _, err := io.Copy(io.Discard, a.body); err != nil {
			return RPCResponse{}, fmt.Errorf("draining snapshot data: %w", err)
		}
	}
	return resp, nil
}
