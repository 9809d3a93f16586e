package main

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/quorumkit/raft"
)

// membershipTimeout bounds a membership change.
const membershipTimeout = 10 * time.Second

// memberRequest is the body of POST /members and POST /join.
type memberRequest struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
	// Voter is true when absent: a new member votes unless told not to.
	Voter *bool `json:"voter,omitempty"`
}

// member is one entry of GET /members.
type member struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
	Suffrage string `json:"suffrage"`
}

// membersAnswer is the body of GET /members.
type membersAnswer struct {
	LeaderID string   `json:"leader_id"`
	Members  []member `json:"members"`
}

// authorised reports whether r may change the membership, and answers it
// when not. Under TLS every client already holds a certificate of the
// cluster's CA (the handshake refuses the others), and that suffices.
// Otherwise the request must carry the secret the server was started
// with; without one, membership changes are refused to everybody.
func (s *server) authorised(w http.ResponseWriter, r *http.Request) bool {
	if hasClientCert(r) {
		return true
	}
	if s.cfg.secret == "" {
		writeError(w, http.StatusForbidden, "membership changes need a client certificate of the cluster's CA or a server started with -secret")
		return false
	}
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(token), []byte(s.cfg.secret)) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="raftkv"`)
		writeError(w, http.StatusUnauthorized, "membership changes need Authorization: Bearer <secret>")
		return false
	}
	return true
}

// validID reports whether id can name a member: 1 to 128 bytes of
// printable characters other than '/' and spaces.
func validID(id string) bool {
	if id == "" || len(id) > maxIDBytes {
		return false
	}
	for _, c := range id {
		if c == '/' || c == unicode.ReplacementChar || unicode.IsSpace(c) || !unicode.IsPrint(c) {
			return false
		}
	}
	return true
}

// validAddr reports whether addr is a host:port.
func validAddr(addr string) bool {
	host, port, err := net.SplitHostPort(addr)
	return err == nil && host != "" && port != "" && len(addr) <= 1024 && utf8.ValidString(addr) && !strings.ContainsAny(addr, "/?#@ ")
}

// decodeJSON reads a JSON body of at most maxJSONBytes into v, answering
// 413 or 400 when it cannot.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxJSONBytes))
	err := dec.Decode(v)
	if err == nil {
		if _, extra := dec.Token(); extra != io.EOF {
			err = errors.New("more than one JSON value")
		}
	}
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "JSON body larger than 64 KiB")
			return false
		}
		writeError(w, http.StatusBadRequest, "malformed JSON: "+err.Error())
		return false
	}
	return true
}

// handleAddMember adds a voter (or a nonvoter with "voter": false) and
// records its HTTP address. POST /join is the same with a voter always.
func (s *server) handleAddMember(w http.ResponseWriter, r *http.Request) {
	if !s.authorised(w, r) {
		return
	}
	var req memberRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	switch {
	case !validID(req.ID):
		writeError(w, http.StatusBadRequest, "id must be 1 to 128 printable bytes without '/' or spaces")
		return
	case !validAddr(req.RaftAddr):
		writeError(w, http.StatusBadRequest, "raft_addr must be host:port")
		return
	case !validAddr(req.HTTPAddr):
		writeError(w, http.StatusBadRequest, "http_addr must be host:port")
		return
	}
	voter := req.Voter == nil || *req.Voter || r.URL.Path == "/join"
	if !s.leads() {
		s.sendToLeader(w, r)
		return
	}
	id, addr := raft.ServerID(req.ID), raft.ServerAddress(req.RaftAddr)
	var err error
	if voter {
		err = s.raft.AddVoter(id, addr, 0, membershipTimeout).Error()
	} else {
		err = s.raft.AddNonvoter(id, addr, 0, membershipTimeout).Error()
	}
	if err == nil {
		err = s.apply(command{Op: "put", Key: httpKeyPrefix + req.ID, Value: req.HTTPAddr})
	}
	if err != nil {
		s.writeRaftError(w, err)
		return
	}
	writeJSON(w, map[string]string{"id": req.ID})
}

// handleRemoveMember removes a member and forgets its HTTP address. The
// leader does not remove itself: it hands its leadership over and sends
// the client to the new leader, which does.
func (s *server) handleRemoveMember(w http.ResponseWriter, r *http.Request) {
	if !s.authorised(w, r) {
		return
	}
	id := r.PathValue("id")
	if !validID(id) {
		writeError(w, http.StatusBadRequest, "id must be 1 to 128 printable bytes without '/' or spaces")
		return
	}
	if !s.leads() {
		s.sendToLeader(w, r)
		return
	}
	if id == s.cfg.id {
		if !s.hasOtherVoter() {
			writeError(w, http.StatusConflict, "cannot remove the only voter")
			return
		}
		if err := s.raft.LeadershipTransfer().Error(); err != nil {
			s.writeRaftError(w, err)
			return
		}
		s.sendToLeader(w, r)
		return
	}
	err := s.raft.RemoveServer(raft.ServerID(id), 0, membershipTimeout).Error()
	if err == nil {
		err = s.apply(command{Op: "delete", Key: httpKeyPrefix + id})
	}
	if err != nil {
		s.writeRaftError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// hasOtherVoter reports whether the configuration has a voter besides
// this server.
func (s *server) hasOtherVoter() bool {
	f := s.raft.GetConfiguration()
	if f.Error() != nil {
		return true // let the transfer report the trouble
	}
	for _, m := range f.Configuration().Servers {
		if m.Suffrage == raft.Voter && string(m.ID) != s.cfg.id {
			return true
		}
	}
	return false
}

// handleMembers lists the members this node knows of.
func (s *server) handleMembers(w http.ResponseWriter, r *http.Request) {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		s.writeRaftError(w, err)
		return
	}
	_, leader := s.raft.LeaderWithID()
	ans := membersAnswer{LeaderID: string(leader), Members: []member{}}
	for _, m := range f.Configuration().Servers {
		httpAddr, _ := s.kv.get(httpKeyPrefix + string(m.ID))
		suffrage := "voter"
		if m.Suffrage != raft.Voter {
			suffrage = "nonvoter"
		}
		ans.Members = append(ans.Members, member{ID: string(m.ID), RaftAddr: string(m.Address), HTTPAddr: httpAddr, Suffrage: suffrage})
	}
	writeJSON(w, ans)
}
