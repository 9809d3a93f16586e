package client

// The retry loop every call goes through.
//
// One call is a series of attempts, each sent to one node: the leader the
// client last saw, or else the next node of Config.Nodes. After each
// attempt the loop decides three things:
//
//   - Where to go next. A 307 names the leader: the client remembers it and
//     goes there at once. A node that is unreachable, knows no leader or
//     fails transiently is dropped: the next attempt goes to the next node.
//   - Whether a write may have been applied. An attempt whose request was
//     never written whole (the connection or the TLS handshake failed, or
//     writing failed part way: a handler needs the whole request, body
//     included), was redirected, or was answered "no leader known" or with
//     a 4xx, certainly was not. Any other failure once the request was
//     written (a reset connection, the deadline, a 503 from a node that was
//     applying it) leaves the outcome unknown.
//
//     Writing part way happens to a TLS 1.3 client that a node refuses:
//     the client's side of the handshake completes before the node checks
//     the client's certificate, so the client starts writing and finds the
//     connection closed. If the whole request fits in the socket first, the
//     refusal arrives as a TLS alert when the client reads, which it
//     recognises (refusedByTLS); but a reset can beat the alert, and then
//     the client cannot tell the refusal from a node that failed while
//     applying the write, and reports the outcome unknown.
//   - Whether to try again: on transient failures, after a jittered
//     exponential pause, until the call's deadline; but a write that may
//     have been applied is sent again only when it says it can be
//     (request.resend).

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// request is one API call as the retry loop sees it.
type request struct {
	method, path string
	query        url.Values
	body         []byte
	header       http.Header
	// write: the call changes the cluster, so an attempt that may have
	// reached a node leaves its outcome unknown.
	write bool
	// resend: the write may be sent again after such an attempt.
	resend bool
	// auth: the call carries the shared secret, if there is one.
	auth bool
	// node, when set, is the base URL of the only node asked, once.
	node string
}

// response is a node's answer.
type response struct {
	node   string // base URL of the node that answered
	status int
	header http.Header
	body   []byte
}

// maxAnswer bounds what the client reads of an answer: a value and then
// some.
const maxAnswer = MaxValueLen + 64<<10

// call runs req's attempts until one succeeds, one fails for good, or the
// deadline passes.
func (c *Client) call(ctx context.Context, req *request) (*response, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	var (
		unknown error // why the first attempt that may have been applied failed
		last    error // why the latest attempt failed
		backoff = c.cfg.MinBackoff
		hops    int // redirects followed since the last pause
	)
	for {
		base := req.node
		if base == "" {
			base = c.target()
		}
		resp, sent, err := c.attempt(ctx, base, req)
		var retryAfter time.Duration
		switch {
		case err != nil:
			if refusedByTLS(err) {
				// The handshake failed: no request was processed, and
				// no other member of the same cluster will think
				// differently.
				return nil, withUnknown(err, unknown)
			}
			if sent && req.write {
				unknown = firstOf(unknown, err)
				if !req.resend {
					return nil, withUnknown(err, unknown)
				}
			}
			if ctx.Err() != nil {
				// The deadline cut this attempt short; the previous
				// one says more about why the call did not succeed.
				break
			}
			last = err
			c.drop(base)
		case resp.status >= 200 && resp.status < 300:
			if req.write {
				// Only the leader applies writes.
				c.setLeader(base)
			}
			return resp, nil
		case resp.status == http.StatusTemporaryRedirect || resp.status == http.StatusPermanentRedirect:
			leader, err := c.redirectTarget(base, req, resp)
			if err != nil {
				last = err
				c.drop(base)
				break
			}
			c.setLeader(leader)
			last = fmt.Errorf("%s sent the client to %s", base, leader)
			if hops++; hops <= len(c.nodes) && req.node == "" {
				continue
			}
		case resp.status == http.StatusServiceUnavailable || resp.status == http.StatusBadGateway || resp.status == http.StatusGatewayTimeout:
			apiErr := answerError(resp)
			last = apiErr
			if noLeaderKnown(apiErr) {
				retryAfter = parseRetryAfter(resp.header)
			} else if req.write {
				unknown = firstOf(unknown, apiErr)
				if !req.resend {
					return nil, withUnknown(apiErr, unknown)
				}
			}
			c.drop(base)
		default:
			apiErr := answerError(resp)
			if req.write && resp.status >= 500 {
				unknown = firstOf(unknown, apiErr)
			}
			return nil, withUnknown(apiErr, unknown)
		}
		if req.node != "" || ctx.Err() != nil {
			return nil, withUnknown(deadlineError(ctx, last), unknown)
		}
		hops = 0
		var pause time.Duration
		pause, backoff = c.pause(backoff, retryAfter)
		timer := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, withUnknown(deadlineError(ctx, last), unknown)
		case <-timer.C:
		}
	}
}

// pause returns how long to wait before the next attempt, given the
// current backoff and a node's Retry-After (0 if none), and the backoff
// after that. The wait is jittered between half the backoff and all of it,
// so that clients that failed together do not retry together; a
// Retry-After is honoured up to MaxBackoff.
func (c *Client) pause(backoff, retryAfter time.Duration) (wait, next time.Duration) {
	wait = backoff/2 + rand.N(backoff/2+1)
	if retryAfter > wait {
		wait = min(retryAfter, c.cfg.MaxBackoff)
	}
	return wait, min(2*backoff, c.cfg.MaxBackoff)
}

// attempt sends req to the node at base. sent reports whether the request
// may have reached the node: it was written whole.
func (c *Client) attempt(ctx context.Context, base string, req *request) (resp *response, sent bool, err error) {
	u := base + req.path
	if len(req.query) > 0 {
		u += "?" + req.query.Encode()
	}
	var body io.Reader
	if req.body != nil {
		body = bytes.NewReader(req.body)
	}
	var wrote atomic.Bool
	trace := &httptrace.ClientTrace{WroteRequest: func(info httptrace.WroteRequestInfo) {
		if info.Err == nil {
			wrote.Store(true)
		}
	}}
	hr, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), req.method, u, body)
	if err != nil {
		return nil, false, fmt.Errorf("building the request for %s: %w", base, err)
	}
	for k, v := range req.header {
		hr.Header[k] = v
	}
	if req.auth && c.cfg.Secret != "" {
		hr.Header.Set("Authorization", "Bearer "+c.cfg.Secret)
	}
	hresp, err := c.http.Do(hr)
	if err != nil {
		return nil, wrote.Load(), err
	}
	defer hresp.Body.Close()
	resp = &response{node: base, status: hresp.StatusCode, header: hresp.Header}
	resp.body, err = io.ReadAll(io.LimitReader(hresp.Body, maxAnswer+1))
	switch {
	case err != nil && req.write && resp.status/100 == 2:
		// The status tells how the write ended; the rest does not matter.
		resp.body = nil
	case err != nil:
		return nil, true, fmt.Errorf("reading the answer of %s: %w", base, err)
	case len(resp.body) > maxAnswer:
		return nil, true, fmt.Errorf("the answer of %s exceeds %d bytes", base, maxAnswer)
	}
	return resp, true, nil
}

// target is the node the next attempt goes to.
func (c *Client) target() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.leader != "" {
		return c.mu.leader
	}
	return c.nodes[c.mu.next%len(c.nodes)]
}

// setLeader records the leader's base URL.
func (c *Client) setLeader(base string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.leader = base
}

// drop stops sending to base until the others have had their turn.
func (c *Client) drop(base string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.leader == base {
		c.mu.leader = ""
	}
	if c.nodes[c.mu.next%len(c.nodes)] == base {
		c.mu.next = (c.mu.next + 1) % len(c.nodes)
	}
}

// redirectTarget returns the base URL a redirect names, in the client's
// scheme: a client that uses TLS never follows a redirect to plain HTTP.
func (c *Client) redirectTarget(base string, req *request, resp *response) (string, error) {
	loc := resp.header.Get("Location")
	from, err := url.Parse(base + req.path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", base, err)
	}
	to, err := from.Parse(loc)
	if err != nil || to.Host == "" {
		return "", fmt.Errorf("%s redirected to %q, which names no node", base, loc)
	}
	return c.scheme + "://" + to.Host, nil
}

// answerError turns a refusal into an *APIError.
func answerError(resp *response) *APIError {
	e := &APIError{Node: resp.node, Status: resp.status}
	var body struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(resp.body, &body) == nil && body.Error != "" {
		e.Message = body.Error
	} else {
		e.Message = strings.TrimSpace(string(resp.body))
	}
	return e
}

// noLeaderKnown reports whether a node refused a request because it knows
// no leader, and so certainly applied nothing. The API says so in the
// message ("no leader known"); other 503s may come after a write was
// applied.
func noLeaderKnown(e *APIError) bool {
	return strings.Contains(strings.ToLower(e.Message), "no leader known")
}

// parseRetryAfter reads a Retry-After header given in seconds.
func parseRetryAfter(h http.Header) time.Duration {
	s, err := strconv.Atoi(strings.TrimSpace(h.Get("Retry-After")))
	if err != nil || s < 0 {
		return 0
	}
	return time.Duration(s) * time.Second
}

// refusedByTLS reports whether err is a failed TLS handshake: the node
// refused the client's certificate (a TLS alert) or the client refused the
// node's.
func refusedByTLS(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "remote error" {
		return true
	}
	var verify *tls.CertificateVerificationError
	return errors.As(err, &verify)
}

// firstOf returns old, or err when old is nil.
func firstOf(old, err error) error {
	if old != nil {
		return old
	}
	return err
}

// withUnknown marks err as the end of a write whose outcome is unknown when
// an attempt may have been applied.
func withUnknown(err, unknown error) error {
	switch {
	case unknown == nil:
		return err
	case err == unknown:
		return fmt.Errorf("%w: %w", ErrUnknownOutcome, err)
	default:
		return fmt.Errorf("%w: an attempt failed with %v; the last with %w", ErrUnknownOutcome, unknown, err)
	}
}

// deadlineError says the call ran out of time, and why the last attempt
// failed.
func deadlineError(ctx context.Context, last error) error {
	if last == nil {
		return ctx.Err()
	}
	if ctx.Err() == nil {
		return last
	}
	return fmt.Errorf("%w; the last attempt: %w", ctx.Err(), last)
}
