package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// scriptedTransport answers the client's first request with a fuzzed
// answer and every later one with a plain 400, so that no call retries
// more than once.
type scriptedTransport struct {
	status int
	header http.Header
	body   []byte
	rounds int
}

func (s *scriptedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		io.Copy(io.Discard, req.Body)
		req.Body.Close()
	}
	s.rounds++
	resp := &http.Response{StatusCode: http.StatusBadRequest, Header: http.Header{}, Request: req,
		Body: io.NopCloser(strings.NewReader(`{"error":"enough"}`))}
	if s.rounds == 1 {
		resp.StatusCode, resp.Header, resp.Body = s.status, s.header, io.NopCloser(bytes.NewReader(s.body))
	}
	return resp, nil
}

// FuzzAnswer feeds a node's answer (status, Location, Retry-After and
// body) to each of the client's calls. The client must not panic, must
// return what a 2xx answer carries, and must classify refusals as its
// documentation says: a 4xx is an *APIError with that status (Get's 404
// is ErrNotFound) and leaves no write's outcome unknown; another 5xx
// leaves it unknown; a transient 5xx leaves it unknown unless the node
// said it knows no leader.
func FuzzAnswer(f *testing.F) {
	f.Add(uint8(0), uint16(100), "", "", []byte("value"))
	f.Add(uint8(0), uint16(304), "", "", []byte(`{"error":"key not found"}`))
	f.Add(uint8(1), uint16(407), "http://other:1/kv/a", "", []byte{})
	f.Add(uint8(1), uint16(403), "", "1", []byte(`{"error":"no leader known"}`))
	f.Add(uint8(3), uint16(312), "", "", []byte(`{"error":"the current value differs"}`))
	f.Add(uint8(4), uint16(100), "", "", []byte(`{"leader_id":"n1","members":[{"id":"n1","suffrage":"voter"}]}`))
	f.Add(uint8(5), uint16(100), "", "", []byte(`{"id":"n1","state":"Leader","stats":{"term":"2"}}`))
	f.Add(uint8(5), uint16(100), "", "", []byte(`{"stats":[1]}`))
	f.Add(uint8(2), uint16(400), "", "", []byte("internal\n"))
	f.Add(uint8(1), uint16(208), "%zz", "", []byte{})
	f.Fuzz(func(t *testing.T, op uint8, code uint16, location, retryAfter string, body []byte) {
		status := 100 + int(code)%500
		st := &scriptedTransport{status: status, header: http.Header{}, body: body}
		if location != "" {
			st.header.Set("Location", location)
		}
		if retryAfter != "" {
			st.header.Set("Retry-After", retryAfter)
		}
		c, err := New(Config{Nodes: []string{"n1:1", "n2:1"}, Timeout: 30 * time.Second,
			MinBackoff: time.Microsecond, MaxBackoff: time.Microsecond})
		if err != nil {
			t.Fatal(err)
		}
		c.http.Transport = st
		ctx := context.Background()
		var (
			got   []byte
			write bool
			name  string
		)
		switch op % 6 {
		case 0:
			name = "Get"
			got, err = c.Get(ctx, "k", Linearizable)
		case 1:
			name, write = "Put", true
			err = c.Put(ctx, "k", []byte("v"))
		case 2:
			name, write = "Delete", true
			err = c.Delete(ctx, "k")
		case 3:
			name, write = "CAS", true
			err = c.CAS(ctx, "k", []byte("old"), []byte("new"))
		case 4:
			name = "Members"
			var m *Membership
			if m, err = c.Members(ctx); err == nil && m == nil {
				t.Fatal("Members returned neither a membership nor an error")
			}
		case 5:
			name = "Status"
			var s *Status
			if s, err = c.Status(ctx, "n1:1"); err == nil && s == nil {
				t.Fatal("Status returned neither a status nor an error")
			}
		}
		if st.rounds > 2 {
			t.Fatalf("%s sent %d requests; the second answer ends every call", name, st.rounds)
		}
		var message struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(body, &message) != nil || message.Error == "" {
			message.Error = strings.TrimSpace(string(body))
		}
		var api *APIError
		switch {
		case status/100 == 2:
			switch op % 6 {
			case 0:
				if err != nil || !bytes.Equal(got, body) {
					t.Fatalf("Get of a %d answer: %q, %v; want the body", status, got, err)
				}
			case 4:
				var m Membership
				if (err == nil) != (json.Unmarshal(body, &m) == nil) {
					t.Fatalf("Members of a %d answer %q: %v", status, body, err)
				}
			case 5:
				var s Status
				if (err == nil) != (json.Unmarshal(body, &s) == nil) {
					t.Fatalf("Status of a %d answer %q: %v", status, body, err)
				}
			default:
				if err != nil {
					t.Fatalf("%s of a %d answer: %v", name, status, err)
				}
			}
		case status/100 == 4:
			if op%6 == 0 && status == http.StatusNotFound {
				if !errors.Is(err, ErrNotFound) {
					t.Fatalf("Get of a 404: %v, want ErrNotFound", err)
				}
				return
			}
			if !errors.As(err, &api) || api.Status != status || api.Message != message.Error {
				t.Fatalf("%s of a %d answer %q: %v; want an APIError with its status and message", name, status, body, err)
			}
			if errors.Is(err, ErrUnknownOutcome) {
				t.Fatalf("%s of a %d answer: %v; a 4xx applied nothing", name, status, err)
			}
		case status/100 == 5:
			if err == nil {
				t.Fatalf("%s of a %d answer succeeded", name, status)
			}
			transient := status == http.StatusServiceUnavailable || status == http.StatusBadGateway || status == http.StatusGatewayTimeout
			noLeader := transient && strings.Contains(strings.ToLower(message.Error), "no leader known")
			if write && errors.Is(err, ErrUnknownOutcome) == noLeader {
				t.Fatalf("%s of a %d answer %q: %v; unknown outcome should be %v", name, status, body, err, !noLeader)
			}
			if !transient && (!errors.As(err, &api) || api.Status != status) {
				t.Fatalf("%s of a %d answer: %v; want an APIError with its status", name, status, err)
			}
		default:
			if err == nil {
				t.Fatalf("%s of a %d answer succeeded", name, status)
			}
		}
	})
}
