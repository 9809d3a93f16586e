package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
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
}

// startServer opens the server's stores, starts raft and serves HTTP. A
// new cluster starts on one server with bootstrap; others join it.
func startServer(cfg serverConfig) (*server, error) {
	if err := os.MkdirAll(cfg.dataDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating data directory: %w", err)
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: cfg.id, Output: cfg.logOutput, Level: hclog.Info})
	store, kind, err := openStore(cfg.dataDir, cfg.store, logger)
	if err != nil {
		return nil, err
	}
	s := &server{cfg: cfg, kv: newKV(), store: store, storeKind: kind}
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
	s.trans, err = raft.NewTCPTransportWithLogger(cfg.raftAddr, advertise, 3, 10*time.Second, logger.Named("net"))
	if err != nil {
		return fail(fmt.Errorf("listening for raft on %s: %w", cfg.raftAddr, err))
	}
	conf := raft.DefaultConfig()
	conf.LocalID = raft.ServerID(cfg.id)
	conf.Logger = logger
	// A server stopped on purpose (a rolling restart) hands its leadership
	// over first, so writes pause for milliseconds, not an election.
	conf.LeadershipTransferOnShutdown = true
	if cfg.heartbeat > 0 {
		conf.HeartbeatTimeout, conf.ElectionTimeout, conf.LeaderLeaseTimeout = cfg.heartbeat, cfg.heartbeat, cfg.heartbeat/2
	}
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
	mux := http.NewServeMux()
	mux.HandleFunc("GET /kv/{key}", s.handleGet)
	mux.HandleFunc("PUT /kv/{key}", s.handleWrite)
	mux.HandleFunc("DELETE /kv/{key}", s.handleWrite)
	mux.HandleFunc("POST /join", s.handleJoin)
	mux.HandleFunc("GET /status", s.handleStatus)
	s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go s.http.Serve(s.ln)
	if cfg.bootstrap {
		go s.announceSelf()
	}
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

// close stops the HTTP server, raft and the stores.
func (s *server) close() {
	if s.http != nil {
		s.http.Close()
	}
	if s.raft != nil {
		s.raft.Shutdown().Error()
	} else if s.trans != nil {
		s.trans.Close()
	}
	s.store.Close()
}

// announceSelf records this server's HTTP address once it leads.
func (s *server) announceSelf() {
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
		if s.raft.State() == raft.Leader {
			s.apply(command{Op: "put", Key: httpKeyPrefix + s.cfg.id, Value: s.cfg.httpAddr})
			return
		}
		select {
		case <-s.raft.LeaderCh():
		case <-time.After(time.Second):
		}
	}
}

// joinCluster asks the server at joinAddr (HTTP) to add this one.
func (s *server) joinCluster(joinAddr string) error {
	body, _ := json.Marshal(joinRequest{ID: s.cfg.id, RaftAddr: string(s.trans.LocalAddr()), HTTPAddr: s.cfg.httpAddr})
	var lastErr error
	for attempt := 0; attempt < 20; attempt++ {
		resp, err := http.Post("http://"+joinAddr+"/join", "application/json", strings.NewReader(string(body)))
		if err == nil {
			msg, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("join refused: %s: %s", resp.Status, strings.TrimSpace(string(msg)))
		}
		lastErr = err
		time.Sleep(500 * time.Millisecond)
	}
	return fmt.Errorf("joining through %s: %w", joinAddr, lastErr)
}

type joinRequest struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
}

// apply writes a command through raft; it must run on the leader.
func (s *server) apply(c command) error {
	f := s.raft.Apply(c.encode(), 5*time.Second)
	if err := f.Error(); err != nil {
		return err
	}
	if err, ok := f.Response().(error); ok {
		return err
	}
	return nil
}

// redirectToLeader sends the client to the leader's HTTP address, when it
// is known; it reports whether it answered.
func (s *server) redirectToLeader(w http.ResponseWriter, r *http.Request) bool {
	if s.raft.State() == raft.Leader {
		return false
	}
	_, leaderID := s.raft.LeaderWithID()
	addr, ok := s.kv.get(httpKeyPrefix + string(leaderID))
	if leaderID == "" || !ok {
		http.Error(w, "no leader known yet, try again", http.StatusServiceUnavailable)
		return true
	}
	http.Redirect(w, r, "http://"+addr+r.URL.RequestURI(), http.StatusTemporaryRedirect)
	return true
}

// handleGet reads a key. By default the read is linearizable (ReadIndex
// on the leader); ?stale=true reads this server's copy, which may lag.
func (s *server) handleGet(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("stale") != "true" {
		if s.redirectToLeader(w, r) {
			return
		}
		if err := s.raft.ReadIndex(5 * time.Second).Error(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
	}
	v, ok := s.kv.get(r.PathValue("key"))
	if !ok {
		http.NotFound(w, r)
		return
	}
	io.WriteString(w, v)
}

// handleWrite puts (PUT, the body is the value) or deletes a key.
func (s *server) handleWrite(w http.ResponseWriter, r *http.Request) {
	if s.redirectToLeader(w, r) {
		return
	}
	c := command{Op: "delete", Key: r.PathValue("key")}
	if r.Method == http.MethodPut {
		value, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c = command{Op: "put", Key: c.Key, Value: string(value)}
	}
	if err := s.apply(c); err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// handleJoin adds a server to the cluster, on the leader.
func (s *server) handleJoin(w http.ResponseWriter, r *http.Request) {
	if s.redirectToLeader(w, r) {
		return
	}
	var req joinRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil || req.ID == "" || req.RaftAddr == "" {
		http.Error(w, "want {\"id\", \"raft_addr\", \"http_addr\"}", http.StatusBadRequest)
		return
	}
	if err := s.raft.AddVoter(raft.ServerID(req.ID), raft.ServerAddress(req.RaftAddr), 0, 10*time.Second).Error(); err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	if err := s.apply(command{Op: "put", Key: httpKeyPrefix + req.ID, Value: req.HTTPAddr}); err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	io.WriteString(w, "joined\n")
}

// handleStatus reports raft's figures.
func (s *server) handleStatus(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(s.raft.Stats())
}
