package raft

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// ReadPeersJSON reads a legacy peers.json file, a JSON array of addresses
// such as ["10.0.0.1:8300","10.0.0.2:8300"], and returns a configuration
// in which each address is a voter whose ID is the address itself. It is
// meant for manual recovery of clusters that run without server IDs
// (protocol versions below 3); use ReadConfigJSON otherwise.
//
// A file that cannot be read is reported with the os package's error
// unchanged, so os.IsNotExist works on it. A file that is not such an array
// is reported with the path and the position of the problem. A valid array
// that does not make a usable configuration (an empty or repeated address,
// no servers) is reported with checkConfiguration's message.
func ReadPeersJSON(path string) (Configuration, error) {
	var addrs []string
	if err := readJSONFile(path, &addrs); err != nil {
		return Configuration{}, err
	}
	var configuration Configuration
	for _, addr := range addrs {
		configuration.Servers = append(configuration.Servers, Server{
			Suffrage: Voter,
			ID:       ServerID(addr),
			Address:  ServerAddress(addr),
		})
	}
	if err := checkConfiguration(configuration); err != nil {
		return Configuration{}, err
	}
	return configuration, nil
}

// peersJSONServer is one element of the array ReadConfigJSON reads. A
// missing non_voter means a voter.
type peersJSONServer struct {
	ID       ServerID      `json:"id"`
	Address  ServerAddress `json:"address"`
	NonVoter bool          `json:"non_voter"`
}

// ReadConfigJSON reads a peers.json file that names servers by ID, a JSON
// array of objects such as
//
//	[{"id": "n1", "address": "10.0.0.1:8300", "non_voter": false}]
//
// and returns the configuration it describes, for manual recovery with
// RecoverCluster. Servers are voters unless non_voter is true; other keys
// are ignored.
//
// Errors are reported as by ReadPeersJSON.
func ReadConfigJSON(path string) (Configuration, error) {
	var servers []peersJSONServer
	if err := readJSONFile(path, &servers); err != nil {
		return Configuration{}, err
	}
	var configuration Configuration
	for _, s := range servers {
		suffrage := Voter
		if s.NonVoter {
			suffrage = Nonvoter
		}
		configuration.Servers = append(configuration.Servers, Server{
			Suffrage: suffrage,
			ID:       s.ID,
			Address:  s.Address,
		})
	}
	if err := checkConfiguration(configuration); err != nil {
		return Configuration{}, err
	}
	return configuration, nil
}

// readJSONFile decodes the single JSON value held by the file at path into
// out. Anything but white space after that value is an error.
func readJSONFile(path string, out interface{}) error {
	buf, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(buf))
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("parsing %s: %w", path, describeJSONError(buf, err))
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		return fmt.Errorf("parsing %s: unexpected data after the JSON value at offset %d", path, dec.InputOffset())
	}
	return nil
}

// describeJSONError adds the line and column where a syntax or type error
// was found, which encoding/json gives only as a byte offset.
func describeJSONError(buf []byte, err error) error {
	var offset int64 = -1
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntaxErr):
		offset = syntaxErr.Offset
	case errors.As(err, &typeErr):
		offset = typeErr.Offset
	case errors.Is(err, io.EOF):
		return errors.New("the file is empty")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("the file ends inside a JSON value: %w", err)
	}
	// The offset counts the bytes read up to and including the one where
	// the problem was found.
	if offset < 1 || offset > int64(len(buf)) {
		return err
	}
	at := offset - 1
	line := 1 + bytes.Count(buf[:at], []byte("\n"))
	column := at - int64(bytes.LastIndexByte(buf[:at], '\n'))
	return fmt.Errorf("line %d, column %d: %w", line, column, err)
}
