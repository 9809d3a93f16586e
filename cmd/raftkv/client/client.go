// Package client talks to a raftkv cluster through its HTTP API (the
// server is cmd/raftkv/server.go).
//
// A Client is given the HTTP addresses of some members. It sends each call
// to the leader it last found, follows the 307 redirects of followers
// itself and remembers where they pointed, and retries, with a bounded
// exponential backoff and jitter, while a cluster elects a leader or a node
// is unreachable, until the call's deadline.
//
// Retries never hide what a caller needs to know about a write. An error
// from a write that wraps ErrUnknownOutcome means the write may or may not
// have been applied (a node received it and then failed before answering);
// any other error means it certainly was not. CAS is never sent again once
// an attempt may have been applied, since a second attempt could see the
// first one's value and report a mismatch. Put, Delete and the membership
// changes are sent again unless Config.AtMostOnce is set, which makes them
// at-least-once: a put applied twice can overwrite a concurrent write made
// between the two.
//
//	c, err := client.New(client.Config{Nodes: []string{"127.0.0.1:8001", "127.0.0.1:8002"}})
//	...
//	err = c.Put(ctx, "greeting", []byte("hello"))
//	v, err := c.Get(ctx, "greeting", client.Linearizable)
package client

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Consistency is the guarantee a read asks for.
type Consistency string

const (
	// Linearizable reads see every write acknowledged before they were
	// called: the leader confirms it still leads before answering.
	Linearizable Consistency = "linearizable"
	// Lease reads are answered by the leader from its lease, without a
	// round trip to a quorum; they rely on bounded clock drift.
	Lease Consistency = "lease"
	// Stale reads are answered from the copy of whichever node is asked,
	// which may lag behind the leader.
	Stale Consistency = "stale"
)

// Limits of the API, checked before anything is sent.
const (
	// MaxKeyLen is the longest key the API accepts, in bytes.
	MaxKeyLen = 1024
	// MaxValueLen is the largest value the API accepts, in bytes.
	MaxValueLen = 1 << 20
)

// Config says where a cluster is and how to reach it.
type Config struct {
	// Nodes are the HTTP addresses (host:port) of some members; at least
	// one. A scheme prefix is accepted and replaced by the one TLS implies.
	Nodes []string
	// TLS, when set, makes the client use HTTPS with this configuration:
	// RootCAs should hold the cluster's CA and Certificates a client
	// certificate it signed. Nil means plain HTTP.
	TLS *tls.Config
	// Secret, when set, is sent as a bearer token with membership changes.
	Secret string
	// Timeout bounds every call, retries included (default 10s). A
	// context with an earlier deadline bounds it more.
	Timeout time.Duration
	// MinBackoff and MaxBackoff bound the pause between attempts (defaults
	// 25ms and 1s). The pause doubles from MinBackoff up to MaxBackoff and
	// is jittered; a node's Retry-After is honoured up to MaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// AtMostOnce, when set, stops Put, Delete and the membership changes
	// from being sent again after an attempt that may have been applied:
	// they return an error wrapping ErrUnknownOutcome instead, as CAS
	// always does. A linearizability checker needs this.
	AtMostOnce bool
}

// Client is a handle on a cluster. It is safe for concurrent use.
type Client struct {
	cfg    Config
	scheme string
	nodes  []string // base URLs: scheme://host:port
	http   *http.Client

	mu struct {
		sync.Mutex
		// leader is the base URL of the node last seen leading, or "".
		leader string
		// next indexes the node to try when no leader is known.
		next int
	}
}

// New returns a client of the cluster cfg describes. It does not contact
// the cluster.
func New(cfg Config) (*Client, error) {
	if len(cfg.Nodes) == 0 {
		return nil, errors.New("client: no node addresses")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 25 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = time.Second
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = cfg.MinBackoff
	}
	c := &Client{cfg: cfg, scheme: "http"}
	if cfg.TLS != nil {
		c.scheme = "https"
	}
	for _, n := range cfg.Nodes {
		if i := strings.Index(n, "://"); i >= 0 {
			n = n[i+3:]
		}
		n = strings.TrimRight(n, "/")
		if n == "" || strings.ContainsAny(n, "/?#") {
			return nil, fmt.Errorf("client: bad node address %q: want host:port", n)
		}
		c.nodes = append(c.nodes, c.scheme+"://"+n)
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	// A node that does not accept connections should not hold a call
	// that other nodes could answer.
	transport.DialContext = (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	if cfg.TLS != nil {
		transport.TLSClientConfig = cfg.TLS.Clone()
	}
	c.http = &http.Client{
		Transport: transport,
		// Redirects are the client's business: it remembers the leader
		// they name and decides itself whether a write may be sent again.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return c, nil
}

// Close releases the client's idle connections.
func (c *Client) Close() {
	c.http.CloseIdleConnections()
}

// Leader returns the base URL of the node the client last saw leading, or
// "" when it knows none.
func (c *Client) Leader() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.leader
}

func checkKey(key string) error {
	if len(key) == 0 || len(key) > MaxKeyLen {
		return fmt.Errorf("key of %d bytes: want 1 to %d", len(key), MaxKeyLen)
	}
	return nil
}

func checkValue(v []byte) error {
	if len(v) > MaxValueLen {
		return fmt.Errorf("value of %d bytes: the limit is %d", len(v), MaxValueLen)
	}
	return nil
}

// Get reads key with the given consistency ("" means Linearizable). It
// returns ErrNotFound when the key is absent.
func (c *Client) Get(ctx context.Context, key string, consistency Consistency) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, fmt.Errorf("get: %w", err)
	}
	if consistency == "" {
		consistency = Linearizable
	}
	q := url.Values{"consistency": {string(consistency)}}
	switch consistency {
	case Linearizable, Lease:
	case Stale:
		// The alias servers that predate the consistency parameter know.
		q.Set("stale", "true")
	default:
		return nil, fmt.Errorf("get: unknown consistency %q: want linearizable, lease or stale", consistency)
	}
	resp, err := c.call(ctx, &request{method: http.MethodGet, path: kvPath(key), query: q})
	if err != nil {
		var api *APIError
		if errors.As(err, &api) && api.Status == http.StatusNotFound {
			return nil, fmt.Errorf("get %q: %w", key, ErrNotFound)
		}
		return nil, fmt.Errorf("get %q: %w", key, err)
	}
	return resp.body, nil
}

// Put sets key to value. On error, see ErrUnknownOutcome.
func (c *Client) Put(ctx context.Context, key string, value []byte) error {
	if err := checkKey(key); err != nil {
		return fmt.Errorf("put: %w", err)
	}
	if err := checkValue(value); err != nil {
		return fmt.Errorf("put %q: %w", key, err)
	}
	_, err := c.call(ctx, &request{method: http.MethodPut, path: kvPath(key), body: value, write: true, resend: !c.cfg.AtMostOnce})
	if err != nil {
		return fmt.Errorf("put %q: %w", key, err)
	}
	return nil
}

// Delete removes key; an absent key is not an error. On error, see
// ErrUnknownOutcome.
func (c *Client) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	_, err := c.call(ctx, &request{method: http.MethodDelete, path: kvPath(key), write: true, resend: !c.cfg.AtMostOnce})
	if err != nil {
		return fmt.Errorf("delete %q: %w", key, err)
	}
	return nil
}

// absentIfMatch is the If-Match value that asks for an absent key (or an
// empty value): two double quotes, as the API has it. An empty header
// would mean the same to a raftkv server, but a proxy may drop it, which
// would turn the compare-and-set into a plain put.
const absentIfMatch = `""`

// CAS sets key to value if its current value is expected; an empty
// expected value stands for an absent key (or an empty value). It returns
// an error wrapping ErrCASMismatch when the value differs (nothing was
// written), and one wrapping ErrUnknownOutcome when an attempt may have
// been applied: CAS is never sent twice. The expected value `""` (two
// double quotes) cannot be asked for: the API reads it as "absent".
func (c *Client) CAS(ctx context.Context, key string, expected, value []byte) error {
	if err := checkKey(key); err != nil {
		return fmt.Errorf("cas: %w", err)
	}
	if err := checkValue(value); err != nil {
		return fmt.Errorf("cas %q: %w", key, err)
	}
	if !validHeaderValue(expected) {
		return fmt.Errorf("cas %q: the expected value holds bytes an HTTP header cannot carry", key)
	}
	ifMatch := string(expected)
	switch ifMatch {
	case absentIfMatch:
		return fmt.Errorf("cas %q: the expected value %s stands for an absent key in the API; to expect an absent key, expect the empty value", key, absentIfMatch)
	case "":
		ifMatch = absentIfMatch
	}
	h := http.Header{}
	h.Set("If-Match", ifMatch)
	_, err := c.call(ctx, &request{method: http.MethodPut, path: kvPath(key), body: value, header: h, write: true})
	if err != nil {
		return fmt.Errorf("cas %q: %w", key, err)
	}
	return nil
}

// validHeaderValue reports whether v can travel as an HTTP header value
// unchanged: no control bytes but tab, no leading or trailing blanks
// (which the server would trim).
func validHeaderValue(v []byte) bool {
	for _, b := range v {
		if (b < ' ' && b != '\t') || b == 0x7f {
			return false
		}
	}
	return len(v) == 0 || (v[0] != ' ' && v[0] != '\t' && v[len(v)-1] != ' ' && v[len(v)-1] != '\t')
}

func kvPath(key string) string { return "/kv/" + url.PathEscape(key) }

// Member is one server of the cluster's configuration.
type Member struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
	// Suffrage is "voter" or "nonvoter".
	Suffrage string `json:"suffrage"`
}

// Membership is the cluster's configuration as a node sees it.
type Membership struct {
	LeaderID string   `json:"leader_id"`
	Members  []Member `json:"members"`
}

// Members returns the cluster's membership, from the leader when one is
// known.
func (c *Client) Members(ctx context.Context) (*Membership, error) {
	resp, err := c.call(ctx, &request{method: http.MethodGet, path: "/members"})
	if err != nil {
		return nil, fmt.Errorf("members: %w", err)
	}
	var m Membership
	if err := json.Unmarshal(resp.body, &m); err != nil {
		return nil, fmt.Errorf("members: decoding %s's answer: %w", resp.node, err)
	}
	return &m, nil
}

// AddMember adds a server to the cluster, as a voter or not. It needs the
// secret or a client certificate (else ErrUnauthorized). On error, see
// ErrUnknownOutcome.
func (c *Client) AddMember(ctx context.Context, id, raftAddr, httpAddr string, voter bool) error {
	if id == "" || raftAddr == "" || httpAddr == "" {
		return errors.New("add member: id, raft address and HTTP address are required")
	}
	body, err := json.Marshal(struct {
		ID       string `json:"id"`
		RaftAddr string `json:"raft_addr"`
		HTTPAddr string `json:"http_addr"`
		Voter    bool   `json:"voter"`
	}{id, raftAddr, httpAddr, voter})
	if err != nil {
		return fmt.Errorf("add member %s: %w", id, err)
	}
	h := http.Header{"Content-Type": {"application/json"}}
	_, err = c.call(ctx, &request{method: http.MethodPost, path: "/members", body: body, header: h, write: true, auth: true, resend: !c.cfg.AtMostOnce})
	if err != nil {
		return fmt.Errorf("add member %s: %w", id, err)
	}
	return nil
}

// RemoveMember removes a server from the cluster. It needs the secret or a
// client certificate (else ErrUnauthorized). On error, see
// ErrUnknownOutcome.
func (c *Client) RemoveMember(ctx context.Context, id string) error {
	if id == "" {
		return errors.New("remove member: an id is required")
	}
	_, err := c.call(ctx, &request{method: http.MethodDelete, path: "/members/" + url.PathEscape(id), write: true, auth: true, resend: !c.cfg.AtMostOnce})
	if err != nil {
		return fmt.Errorf("remove member %s: %w", id, err)
	}
	return nil
}

// Status is one node's view of the cluster.
type Status struct {
	ID         string            `json:"id"`
	State      string            `json:"state"`
	LeaderID   string            `json:"leader_id"`
	LeaderHTTP string            `json:"leader_http"`
	Stats      map[string]string `json:"stats"`
}

// Status asks one node, given by its address as in Config.Nodes, for its
// view. It makes one attempt: a node that does not answer is an error.
func (c *Client) Status(ctx context.Context, node string) (*Status, error) {
	base := c.base(node)
	resp, err := c.call(ctx, &request{method: http.MethodGet, path: "/status", node: base})
	if err != nil {
		return nil, fmt.Errorf("status of %s: %w", node, err)
	}
	var st Status
	if err := json.Unmarshal(resp.body, &st); err != nil {
		return nil, fmt.Errorf("status of %s: decoding the answer: %w", node, err)
	}
	return &st, nil
}

// base turns a node address into a base URL with the client's scheme.
func (c *Client) base(node string) string {
	if i := strings.Index(node, "://"); i >= 0 {
		node = node[i+3:]
	}
	return c.scheme + "://" + strings.TrimRight(node, "/")
}
