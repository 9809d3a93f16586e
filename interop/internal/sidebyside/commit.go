package sidebyside

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"
)

// errNoCommit is returned when no node commits within the timeout.
var errNoCommit = errors.New("no node committed a command in time")

// commitWatch waits, on every given node, for the node to become leader
// and then commits a command through it; the first node to succeed is the
// leader the caller wants, and the time its command came back is when the
// cluster was writable again.
type commitWatch struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	won    chan commitWin
}

type commitWin struct {
	node Node
	at   time.Time
}

// watchCommit starts watching nodes; a node's first LeaderCh value that
// says true starts its attempts. Only one watch may run on a node at a
// time, since it reads the node's LeaderCh.
func watchCommit(nodes []Node, cmd []byte) *commitWatch {
	ctx, cancel := context.WithCancel(context.Background())
	w := &commitWatch{cancel: cancel, won: make(chan commitWin, len(nodes))}
	for _, n := range nodes {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			leading := n.IsLeader()
			for {
				if !leading {
					select {
					case <-ctx.Done():
						return
					case leading = <-n.LeaderCh():
						continue
					}
				}
				if ctx.Err() != nil {
					return
				}
				if err := n.Apply(cmd, 0); err == nil {
					w.won <- commitWin{node: n, at: time.Now()}
					return
				}
				leading = n.IsLeader()
			}
		}()
	}
	return w
}

// wait returns the first node that committed, or errNoCommit after the
// timeout. It stops the other attempts and waits for them only when one
// succeeded; after a timeout the caller closes the cluster, which ends
// them.
func (w *commitWatch) wait(timeout time.Duration) (commitWin, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case win := <-w.won:
		w.cancel()
		w.wg.Wait()
		return win, nil
	case <-t.C:
		w.cancel()
		return commitWin{}, fmt.Errorf("%w (%v)", errNoCommit, timeout)
	}
}

// awaitLeader returns the node that leads the cluster once it has
// committed a command.
func awaitLeader(c Cluster, o Options) (Node, error) {
	win, err := watchCommit(c.Nodes(), command(o.CmdSize, 0, 0)).wait(o.Timeout)
	return win.node, err
}

// command is a workload command of size bytes for client, sequence seq:
// a zero byte (no grow command starts so), then varying content.
func command(size, client int, seq uint64) []byte {
	b := make([]byte, size)
	for i := 1; i+8 <= len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], seq*0x9e3779b97f4a7c15+uint64(client)<<32+uint64(i))
	}
	return b
}
