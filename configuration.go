package raft

import "fmt"

// ServerID uniquely identifies a server for the life of the cluster.
type ServerID string

// ServerAddress is where a server can be reached through the transport.
type ServerAddress string

// ServerSuffrage says whether a server's vote counts. The values are stored
// in configuration entries, so they never change.
type ServerSuffrage int

const (
	// Voter servers vote in elections and count towards the commit quorum.
	Voter ServerSuffrage = iota
	// Nonvoter servers receive the log but neither vote nor count towards
	// the quorum.
	Nonvoter
	// Staging servers were meant to become voters once caught up. They act
	// as non-voters.
	//
	// Deprecated: use Nonvoter and AddVoter.
	Staging
)

// String returns the suffrage's name.
func (s ServerSuffrage) String() string {
	switch s {
	case Voter:
		return "Voter"
	case Nonvoter:
		return "Nonvoter"
	case Staging:
		return "Staging"
	}
	return "ServerSuffrage"
}

// Server is one member of a cluster configuration.
type Server struct {
	// Suffrage says whether the server votes.
	Suffrage ServerSuffrage
	// ID identifies the server; it never changes.
	ID ServerID
	// Address is where the transport reaches the server; it may change.
	Address ServerAddress
}

// Configuration is the membership of a cluster.
type Configuration struct {
	Servers []Server
}

// Clone returns a copy of c that shares no memory with it.
func (c *Configuration) Clone() (copy Configuration) {
	copy.Servers = append(copy.Servers, c.Servers...)
	return copy
}

// ConfigurationChangeCommand is the kind of a membership change.
type ConfigurationChangeCommand uint8

const (
	// AddVoter adds a server as a voter, or makes an existing server one.
	AddVoter ConfigurationChangeCommand = iota
	// AddNonvoter adds a server as a non-voter; an existing voter keeps its
	// vote and only has its address updated.
	AddNonvoter
	// DemoteVoter takes a server's vote away and keeps it as a non-voter.
	DemoteVoter
	// RemoveServer removes a server from the cluster.
	RemoveServer
	// Promote makes a Staging server a voter.
	Promote
	// AddStaging is the old name of AddVoter.
	//
	// Deprecated: use AddVoter.
	AddStaging = 0
)

// String returns the command's name.
func (c ConfigurationChangeCommand) String() string {
	switch c {
	case AddVoter:
		return "AddVoter"
	case AddNonvoter:
		return "AddNonvoter"
	case DemoteVoter:
		return "DemoteVoter"
	case RemoveServer:
		return "RemoveServer"
	case Promote:
		return "Promote"
	}
	return "ConfigurationChangeCommand"
}

// configurationChangeRequest is one requested membership change.
type configurationChangeRequest struct {
	command  ConfigurationChangeCommand
	serverID ServerID
	// serverAddress is set for AddVoter and AddNonvoter only.
	serverAddress ServerAddress
	// prevIndex, when not zero, is the index of the configuration the
	// caller based the change on; the change fails if the latest
	// configuration is at another index.
	prevIndex uint64
}

// configurations tracks the two configurations a node cares about. A
// configuration takes effect as soon as its entry is appended (latest), and
// becomes committed once its entry is (Raft thesis §4.1).
//
// Invariant: committedIndex <= latestIndex, and when they differ, latest
// differs from committed by exactly one change.
type configurations struct {
	committed      Configuration
	committedIndex uint64
	latest         Configuration
	latestIndex    uint64
	// latestVoters are the voters of latest, kept with it.
	latestVoters []ServerID
}

// clone returns a deep copy.
func (c *configurations) clone() configurations {
	return configurations{
		committed:      c.committed.Clone(),
		committedIndex: c.committedIndex,
		latest:         c.latest.Clone(),
		latestIndex:    c.latestIndex,
		latestVoters:   append([]ServerID(nil), c.latestVoters...),
	}
}

// stable reports whether the latest configuration is committed.
func (c *configurations) stable() bool {
	return c.latestIndex == c.committedIndex
}

// find returns the server with id and whether it is in configuration.
func (c Configuration) find(id ServerID) (Server, bool) {
	for _, s := range c.Servers {
		if s.ID == id {
			return s, true
		}
	}
	return Server{}, false
}

// hasVote reports whether id is a voter in configuration.
func hasVote(configuration Configuration, id ServerID) bool {
	s, ok := configuration.find(id)
	return ok && s.Suffrage == Voter
}

// inConfiguration reports whether id is a member of configuration.
func inConfiguration(configuration Configuration, id ServerID) bool {
	_, ok := configuration.find(id)
	return ok
}

// voters returns the IDs of the voters in configuration.
func (c Configuration) voters() []ServerID {
	ids := make([]ServerID, 0, len(c.Servers))
	for _, s := range c.Servers {
		if s.Suffrage == Voter {
			ids = append(ids, s.ID)
		}
	}
	return ids
}

// checkConfiguration reports whether configuration is one a cluster can
// run: every server has an ID and an address, none repeats, and there is at
// least one voter. The messages are the reference's.
func checkConfiguration(configuration Configuration) error {
	ids := make(map[ServerID]bool, len(configuration.Servers))
	addrs := make(map[ServerAddress]bool, len(configuration.Servers))
	voters := 0
	for _, s := range configuration.Servers {
		if s.ID == "" {
			return fmt.Errorf("empty ID in configuration: %v", configuration)
		}
		if s.Address == "" {
			return fmt.Errorf("empty address in configuration: %v", s)
		}
		if ids[s.ID] {
			return fmt.Errorf("found duplicate ID in configuration: %v", s.ID)
		}
		ids[s.ID] = true
		if addrs[s.Address] {
			return fmt.Errorf("found duplicate address in configuration: %v", s.Address)
		}
		addrs[s.Address] = true
		if s.Suffrage == Voter {
			voters++
		}
	}
	if voters == 0 {
		return fmt.Errorf("need at least one voter in configuration: %v", configuration)
	}
	return nil
}

// nextConfiguration returns the configuration that applying change to
// current (appended at currentIndex) produces, or an error when the change
// is stale or would leave an unusable configuration.
func nextConfiguration(current Configuration, currentIndex uint64, change configurationChangeRequest) (Configuration, error) {
	if change.prevIndex > 0 && change.prevIndex != currentIndex {
		return Configuration{}, fmt.Errorf("configuration changed since %v (latest is %v)", change.prevIndex, currentIndex)
	}
	next := current.Clone()
	at := -1
	for i, s := range next.Servers {
		if s.ID == change.serverID {
			at = i
			break
		}
	}
	switch change.command {
	case AddVoter:
		added := Server{Suffrage: Voter, ID: change.serverID, Address: change.serverAddress}
		if at < 0 {
			next.Servers = append(next.Servers, added)
		} else {
			next.Servers[at] = added
		}
	case AddNonvoter:
		switch {
		case at < 0:
			next.Servers = append(next.Servers, Server{Suffrage: Nonvoter, ID: change.serverID, Address: change.serverAddress})
		default:
			// A voter (or staging server) keeps its suffrage: adding a
			// non-voter never demotes anyone.
			next.Servers[at].Address = change.serverAddress
		}
	case DemoteVoter:
		if at >= 0 {
			next.Servers[at].Suffrage = Nonvoter
		}
	case RemoveServer:
		if at >= 0 {
			next.Servers = append(next.Servers[:at], next.Servers[at+1:]...)
		}
	case Promote:
		if at >= 0 && next.Servers[at].Suffrage == Staging {
			next.Servers[at].Suffrage = Voter
		}
	default:
		return Configuration{}, fmt.Errorf("unknown configuration change command %d", change.command)
	}
	if err := checkConfiguration(next); err != nil {
		return Configuration{}, err
	}
	return next, nil
}

// EncodeConfiguration serializes configuration with msgpack, in the format
// of LogConfiguration entries and snapshot metadata. It panics if encoding
// fails, which cannot happen for a Configuration.
func EncodeConfiguration(configuration Configuration) []byte {
	buf, err := encodeMsgpack(configuration)
	if err != nil {
		panic(fmt.Errorf("failed to encode configuration: %v", err))
	}
	return buf
}

// DecodeConfiguration deserializes a configuration made by
// EncodeConfiguration. Like the reference's, it panics on malformed input;
// the library itself never calls it on bytes from the network or disk, and
// callers holding untrusted bytes should recover or validate first.
func DecodeConfiguration(buf []byte) Configuration {
	configuration, err := decodeConfiguration(buf)
	if err != nil {
		panic(fmt.Errorf("failed to decode configuration: %v", err))
	}
	return configuration
}

// decodeConfiguration is the error-returning decoder the library uses.
func decodeConfiguration(buf []byte) (Configuration, error) {
	var configuration Configuration
	if err := decodeMsgpack(buf, &configuration); err != nil {
		return Configuration{}, fmt.Errorf("decoding configuration: %w", err)
	}
	return configuration, nil
}

// encodePeers encodes the voters of configuration in the legacy format
// older protocol versions read: a msgpack array of each voter's address as
// encoded by trans.
func encodePeers(configuration Configuration, trans Transport) []byte {
	var peers [][]byte
	for _, s := range configuration.Servers {
		if s.Suffrage == Voter {
			peers = append(peers, trans.EncodePeer(s.ID, s.Address))
		}
	}
	buf, err := encodeMsgpack(peers)
	if err != nil {
		panic(fmt.Errorf("failed to encode peers: %v", err))
	}
	return buf
}

// decodePeers decodes the legacy peer format into a configuration of
// voters whose IDs are their addresses.
func decodePeers(buf []byte, trans Transport) (Configuration, error) {
	var peers [][]byte
	if err := decodeMsgpack(buf, &peers); err != nil {
		return Configuration{}, fmt.Errorf("failed to decode peers: %w", err)
	}
	var c Configuration
	for _, p := range peers {
		addr := trans.DecodePeer(p)
		c.Servers = append(c.Servers, Server{Suffrage: Voter, ID: ServerID(addr), Address: addr})
	}
	return c, nil
}
