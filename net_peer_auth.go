package raft

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"time"
)

// handshaker is what admitPeer needs from a TLS connection; *tls.Conn has
// it. A stream layer whose Accept hands out *tls.Conn (TLSStreamLayer
// does) gets its handshake run here, on the connection's own goroutine and
// within FrameTimeout, so a client that stalls in the handshake holds up
// nobody else.
type handshaker interface {
	HandshakeContext(ctx context.Context) error
	ConnectionState() tls.ConnectionState
}

// errPeerRefused is a connection refused at the door: a failed handshake,
// or a certificate that VerifyPeer turned down.
type errPeerRefused struct {
	reason string
	err    error
}

func (e errPeerRefused) Error() string {
	if e.err == nil {
		return e.reason
	}
	return e.reason + ": " + e.err.Error()
}

func (e errPeerRefused) Unwrap() error { return e.err }

// admitPeer completes the TLS handshake, if the connection is TLS, and
// asks VerifyPeer, if set, whether to serve the client and as which
// ServerID. It returns errPeerRefused when the connection must be closed.
func (n *NetworkTransport) admitPeer(c *serverConn) error {
	hs, isTLS := c.conn.(handshaker)
	if !isTLS {
		if n.verifyPeer != nil {
			return errPeerRefused{reason: "VerifyPeer is set but the connection is not TLS"}
		}
		return nil
	}

	var deadline time.Time
	if n.frameTimeout > 0 {
		deadline = time.Now().Add(n.frameTimeout)
	}
	_ = c.conn.SetDeadline(deadline)
	if err := hs.HandshakeContext(context.Background()); err != nil {
		if c.isClosing() {
			return errStreamsClosed
		}
		return errPeerRefused{reason: "TLS handshake failed", err: err}
	}
	_ = c.conn.SetDeadline(time.Time{})

	if n.verifyPeer == nil {
		return nil
	}
	state := hs.ConnectionState()
	if len(state.VerifiedChains) == 0 || len(state.PeerCertificates) == 0 {
		return errPeerRefused{reason: "client presented no verified certificate"}
	}
	id, err := n.verifyPeer(state.PeerCertificates[0], c.conn.RemoteAddr())
	if err != nil {
		return errPeerRefused{reason: "VerifyPeer refused the client", err: err}
	}
	c.boundID = id
	return nil
}

// errNoCertificate is returned by the TLS constructors for a configuration
// that could not authenticate this server to its peers.
var errNoCertificate = errors.New("tls config has no certificate: set Certificates, GetCertificate or GetClientCertificate")

// checkTLSConfig reports a configuration unusable for mutual TLS.
func checkTLSConfig(cfg *tls.Config) error {
	if cfg == nil {
		return fmt.Errorf("nil tls config")
	}
	if len(cfg.Certificates) == 0 && cfg.GetCertificate == nil && cfg.GetClientCertificate == nil {
		return errNoCertificate
	}
	return nil
}
