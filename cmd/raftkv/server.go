package main

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/quorumkit/raft"
)

// httpKeyPrefix is where the cluster keeps each member's HTTP address, so
// that any server can send a client to the leader.
const httpKeyPrefix = "_members/"

// serverConfig is what one raftkv server needs to run.
type serverConfig struct {
	id        string
	raftAddr  string
	advertise string // raft address peers use, when it differs from raftAddr
	httpAddr  string
	dataDir   string
	// store is the log and stable store a new data directory gets: "wal"
	// (the default when empty) or "bolt". A directory that already holds
	// one keeps it (see openStore in store.go).
	store     string
	bootstrap bool
	join      string
	// heartbeat, when set, replaces the heartbeat, election and lease
	// timeouts of DefaultConfig.
	heartbeat time.Duration
	logOutput io.Writer
	// caFile, certFile and keyFile, all set or none, turn TLS on: raft
	// over mutual TLS and the API over HTTPS (see tls.go).
	caFile, certFile, keyFile string
	// secret, when set, authorises membership changes that carry it as
	// a bearer token (see members.go).
	secret string
}

// server is one member of a raftkv cluster: a raft node and the HTTP API in
// front of it.
type server struct {
	cfg   serverConfig
	raft  *raft.Raft
	kv    *kvFSM
	store logStore
	// storeKind is the kind of store the data directory runs on: "wal"
	// or "bolt".
	storeKind string
	trans     *raft.NetworkTransport
	http      *http.Server
	ln        net.Listener
	// tls is nil in plain mode.
	tls *tlsSetup
	// scheme is "https" under TLS, else "http": the scheme of redirects.
	scheme string
	// client calls other servers (joining).
	client    *http.Client
	closeOnce sync.Once
	// stop is closed by close; announced once announceSelf has returned.
	stop, announced chan struct{}
}

// startServer opens the server's stores, starts raft and serves HTTP. A
// new cluster starts on one server with bootstrap; others join it.
func startServer(cfg serverConfig) (*server, error) {
	tlsSet, err := loadTLS(cfg.caFile, cfg.certFile, cfg.keyFile, cfg.id)
	if err != nil {
		return nil, err
	}
	m, err := getMetrics()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.dataDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating data directory: %w", err)
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: cfg.id, Output: cfg.logOutput, Level: hclog.Info})
	store, kind, err := openStore(cfg.dataDir, cfg.store, logger)
	if err != nil {
		return nil, err
	}
	s := &server{cfg: cfg, kv: newKV(), store: store, storeKind: kind, tls: tlsSet,
		scheme: "http", client: &http.Client{Timeout: 15 * time.Second}}
	if tlsSet != nil {
		s.scheme, s.client = "https", tlsSet.httpClient()
	}
	fail := func(err error) (*server, error) {
		s.close()
		return nil, err
	}
	logs, err := raft.NewLogCache(512, store)
	if err != nil {
		return fail(err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.dataDir, 2, logger.Named("snapshots"))
	if err != nil {
		return fail(fmt.Errorf("opening the snapshot store: %w", err))
	}
	if err := checkNotWiped(cfg, logs, store, snaps); err != nil {
		return fail(err)
	}
	var advertise net.Addr
	if cfg.advertise != "" {
		if advertise, err = net.ResolveTCPAddr("tcp", cfg.advertise); err != nil {
			return fail(fmt.Errorf("resolving %s: %w", cfg.advertise, err))
		}
	}
	if tlsSet != nil {
		s.trans, err = raft.NewTLSTransportWithConfig(cfg.raftAddr, advertise, tlsSet.raftConfig(), &raft.NetworkTransportConfig{
			MaxPool: 3, Timeout: 10 * time.Second, Logger: logger.Named("net"), VerifyPeer: verifyPeer,
		})
	} else {
		s.trans, err = raft.NewTCPTransportWithLogger(cfg.raftAddr, advertise, 3, 10*time.Second, logger.Named("net"))
	}
	if err != nil {
		return fail(fmt.Errorf("listening for raft on %s: %w", cfg.raftAddr, err))
	}
	conf := raft.DefaultConfig()
	conf.LocalID = raft.ServerID(cfg.id)
	conf.Logger = logger
	// A server stopped on purpose (a rolling restart) hands its leadership
	// to the most up-to-date voter first (handoff.go), so writes pause for
	// milliseconds, not an election.
	conf.LeadershipTransferOnShutdown = true
	if cfg.heartbeat > 0 {
		conf.HeartbeatTimeout, conf.ElectionTimeout, conf.LeaderLeaseTimeout = cfg.heartbeat, cfg.heartbeat, cfg.heartbeat/2
	}
	// Lease reads (?consistency=lease): every server of a raftkv cluster
	// runs this library with the same settings, which the lease's safety
	// argument needs (lease.go). The lease is half the heartbeat timeout,
	// with a tenth of it as the clock-drift margin; the startup vote hold
	// of one lease costs nothing, since every server already holds its
	// vote for a heartbeat timeout after it starts.
	conf.LeaseReadTimeout = conf.HeartbeatTimeout / 2
	conf.LeaseClockDrift = conf.LeaseReadTimeout / 10
	conf.StartupVoteHold = conf.LeaseReadTimeout
	if cfg.bootstrap {
		boot := raft.Configuration{Servers: []raft.Server{{ID: conf.LocalID, Address: s.trans.LocalAddr()}}}
		err := raft.BootstrapCluster(conf, logs, store, snaps, s.trans, boot)
		if err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			return fail(fmt.Errorf("bootstrapping: %w", err))
		}
	}
	if s.raft, err = raft.NewRaft(conf, s.kv, logs, store, snaps, s.trans); err != nil {
		return fail(fmt.Errorf("starting raft: %w", err))
	}
	if s.ln, err = net.Listen("tcp", cfg.httpAddr); err != nil {
		return fail(fmt.Errorf("listening for HTTP on %s: %w", cfg.httpAddr, err))
	}
	s.cfg.httpAddr = s.ln.Addr().String()
	// The HTTP API, v1: keys in kvapi.go, membership in members.go, the
	// JSON errors and limits in httperr.go, metrics in metrics.go. Every
	// node serves every route; one that cannot serve a request itself
	// redirects (307) to the leader.
	mux := http.NewServeMux()
	mux.HandleFunc("GET /kv/{key}", s.handleGet)
	mux.HandleFunc("PUT /kv/{key}", s.handlePut)
	mux.HandleFunc("DELETE /kv/{key}", s.handleDelete)
	mux.HandleFunc("/kv/{$}", handleEmptyKey)
	mux.HandleFunc("GET /members", s.handleMembers)
	mux.HandleFunc("POST /members", s.handleAddMember)
	mux.HandleFunc("DELETE /members/{id}", s.handleRemoveMember)
	mux.HandleFunc("POST /join", s.handleAddMember)
	mux.HandleFunc("GET /status", s.handleStatus)
	mux.Handle("GET /metrics", m.handler())
	s.http = &http.Server{
		Handler:           m.instrument(jsonFallback(mux)),
		ReadHeaderTimeout: 10 * time.Second,
		// A request's body (at most 1 MiB) must arrive, and its answer
		// leave, within these; membership changes take at most 20s.
		ReadTimeout:  time.Minute,
		WriteTimeout: time.Minute,
		IdleTimeout:  2 * time.Minute,
		// Refused handshakes and broken requests are the client's
		// business: they go to the debug level, not to the log.
		ErrorLog: logger.Named("http").StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Debug}),
	}
	if tlsSet != nil {
		s.http.TLSConfig = tlsSet.serverConfig()
		go s.http.ServeTLS(s.ln, "", "")
	} else {
		go s.http.Serve(s.ln)
	}
	stats.add(s)
	s.stop = make(chan struct{})
	s.announced = make(chan struct{})
	go s.announceSelf()
	if cfg.join != "" {
		if err := s.joinCluster(cfg.join); err != nil {
			return fail(err)
		}
	}
	return s, nil
}

// checkNotWiped refuses to start a server whose data directory holds no
// raft state unless it is told to start a new cluster or to join one. A
// member restarted on an empty directory would have forgotten its log and
// the votes it cast, and could help elect two leaders in one term; it must
// be removed from the cluster and join it again as a new member.
func checkNotWiped(cfg serverConfig, logs raft.LogStore, stable raft.StableStore, snaps raft.SnapshotStore) error {
	existing, err := raft.HasExistingState(logs, stable, snaps)
	if err != nil {
		return fmt.Errorf("reading the data directory: %w", err)
	}
	if existing || cfg.bootstrap || cfg.join != "" {
		return nil
	}
	return fmt.Errorf("data directory %s holds no raft state: start a new cluster with -bootstrap or join one with -join; "+
		"if this server was a member and lost its data, remove it from the cluster first", cfg.dataDir)
}

// close stops the HTTP server, then raft (a leader first hands its
// leadership over, see Config.LeadershipTransferOnShutdown), which closes
// the transport once stopped, waits for announceSelf, and only then closes
// the stores raft was using. It may be called more than once.
func (s *server) close() {
	s.closeOnce.Do(func() {
		stats.remove(s)
		if s.http != nil {
			s.http.Close()
		}
		if s.stop != nil {
			close(s.stop)
		}
		if s.raft != nil {
			s.raft.Shutdown().Error()
		} else if s.trans != nil {
			s.trans.Close()
		}
		if s.announced != nil {
			<-s.announced
		}
		if s.store != nil {
			s.store.Close()
		}
	})
}

// announceSelf keeps this server's HTTP address in the replicated map
// while it runs: when it leads (on becoming leader, and every second
// after, in case an attempt failed), it records the address if the map
// holds another (a server restarted with a new -http) or none (the first
// server of a new cluster), so that followers can send clients to it. It
// returns when the server closes.
func (s *server) announceSelf() {
	defer close(s.announced)
	key := httpKeyPrefix + s.cfg.id
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-s.raft.LeaderCh():
		case <-tick.C:
		}
		if !s.leads() {
			continue
		}
		if addr, ok := s.kv.get(key); ok && addr == s.cfg.httpAddr {
			continue
		}
		// A new leader applies the entries of earlier terms before
		// ReadIndex answers, so the map read next is up to date.
		if s.raft.ReadIndex(readTimeout).Error() != nil {
			continue
		}
		if addr, ok := s.kv.get(key); !ok || addr != s.cfg.httpAddr {
			s.apply(command{Op: "put", Key: key, Value: s.cfg.httpAddr})
		}
	}
}

// joinCluster asks the server at joinAddr (HTTP) to add this one, with
// this server's certificate under TLS, else with the secret. A refusal
// (4xx) ends it; other failures are retried for a while, since the
// cluster may be electing a leader.
func (s *server) joinCluster(joinAddr string) error {
	body, _ := json.Marshal(memberRequest{ID: s.cfg.id, RaftAddr: string(s.trans.LocalAddr()), HTTPAddr: s.cfg.httpAddr})
	var lastErr error
	for attempt := 0; attempt < 20; attempt++ {
		if attempt > 0 {
			time.Sleep(500 * time.Millisecond)
		}
		req, err := http.NewRequest(http.MethodPost, s.scheme+"://"+joinAddr+"/join", bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("joining through %s: %w", joinAddr, err)
		}
		req.Header.Set("Content-Type", "application/json")
		if s.cfg.secret != "" {
			req.Header.Set("Authorization", "Bearer "+s.cfg.secret)
		}
		resp, err := s.client.Do(req)
		if err != nil {
			lastErr = err
			if refusedCertificate(err) {
				break
			}
			continue
		}
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return nil
		}
		lastErr = fmt.Errorf("join refused: %s: %s", resp.Status, strings.TrimSpace(string(msg)))
		if resp.StatusCode >= 400 && resp.StatusCode < 500 {
			break
		}
	}
	return fmt.Errorf("joining through %s: %w", joinAddr, lastErr)
}

// refusedCertificate reports whether err is a TLS handshake that failed
// on a certificate, ours or the other side's: trying again cannot help.
func refusedCertificate(err error) bool {
	var verify *tls.CertificateVerificationError
	return errors.As(err, &verify) || strings.Contains(err.Error(), "remote error: tls:")
}

// apply writes a command through raft; it must run on the leader. The
// FSM's answer, when it is an error, is returned.
func (s *server) apply(c command) error {
	f := s.raft.Apply(c.encode(), applyTimeout)
	if err := f.Error(); err != nil {
		return err
	}
	if err, ok := f.Response().(error); ok {
		return err
	}
	return nil
}

// leads reports whether this node is the leader.
func (s *server) leads() bool { return s.raft.State() == raft.Leader }

// sendToLeader redirects the client to the same path and query on the
// leader, or answers 503 when no leader is known.
func (s *server) sendToLeader(w http.ResponseWriter, r *http.Request) {
	// The client sends the body again where it is sent. This copy is read
	// to its end (up to a value's limit) before the answer: over HTTP/2
	// an answer to a request whose body is still arriving resets the
	// stream, which clients such as curl report as a failed request.
	io.Copy(io.Discard, io.LimitReader(r.Body, maxValueBytes+1))
	_, leaderID := s.raft.LeaderWithID()
	addr, ok := "", false
	if leaderID != "" && string(leaderID) != s.cfg.id {
		addr, ok = s.kv.get(httpKeyPrefix + string(leaderID))
	}
	if !ok {
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "no leader known")
		return
	}
	w.Header().Set("Location", s.scheme+"://"+addr+r.URL.RequestURI())
	w.WriteHeader(http.StatusTemporaryRedirect)
}

// statusAnswer is the body of GET /status.
type statusAnswer struct {
	ID         string            `json:"id"`
	State      string            `json:"state"`
	LeaderID   string            `json:"leader_id"`
	LeaderHTTP string            `json:"leader_http"`
	Stats      map[string]string `json:"stats"`
}

// handleStatus reports this node's view of the cluster and raft's figures.
func (s *server) handleStatus(w http.ResponseWriter, r *http.Request) {
	_, leaderID := s.raft.LeaderWithID()
	leaderHTTP, _ := s.kv.get(httpKeyPrefix + string(leaderID))
	writeJSON(w, statusAnswer{ID: s.cfg.id, State: s.raft.State().String(), LeaderID: string(leaderID),
		LeaderHTTP: leaderHTTP, Stats: s.raft.Stats()})
}
