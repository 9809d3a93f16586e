package raft

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"time"
)

// TLSStreamLayer is a StreamLayer that runs mutually authenticated TLS
// over another StreamLayer (TCP for NewTLSTransport). Both sides present a
// certificate and verify the other's against the configured CAs: a client
// whose certificate does not chain to them is refused by the handshake,
// before any RPC is read.
//
// Accept does not run the handshake: it returns a *tls.Conn whose
// handshake the NetworkTransport runs on the connection's own goroutine
// within its FrameTimeout, so a client that stalls cannot hold up Accept.
// Dial runs the client side of the handshake within the dial timeout.
//
// Bytes inside the TLS session are the same as over plain TCP, so TLS
// peers of this library can talk to hashicorp/raft servers that use a TLS
// stream layer with the same certificates.
type TLSStreamLayer struct {
	inner  StreamLayer
	server *tls.Config
	client *tls.Config
}

// NewTLSStreamLayer wraps inner with mutual TLS configured by config, which
// must hold this server's certificate (Certificates or GetCertificate, and
// for the client side Certificates or GetClientCertificate) and the CAs to
// trust (RootCAs to verify servers, ClientCAs to verify clients; ClientCAs
// defaults to RootCAs). Client certificates are always required and
// verified, whatever config.ClientAuth says. When dialing, the server's
// certificate is checked against the host part of the address unless
// config.ServerName names the host to expect. config is copied; later
// changes to it have no effect.
func NewTLSStreamLayer(inner StreamLayer, config *tls.Config) (*TLSStreamLayer, error) {
	if err := checkTLSConfig(config); err != nil {
		return nil, err
	}
	server := config.Clone()
	server.ClientAuth = tls.RequireAndVerifyClientCert
	if server.ClientCAs == nil {
		server.ClientCAs = server.RootCAs
	}
	return &TLSStreamLayer{inner: inner, server: server, client: config.Clone()}, nil
}

// NewTLSTransport listens on bindAddr and returns a NetworkTransport over
// mutually authenticated TLS (see TLSStreamLayer) on TCP. advertise,
// maxPool, timeout and logOutput are as for NewTCPTransport.
func NewTLSTransport(bindAddr string, advertise net.Addr, tlsConfig *tls.Config, maxPool int, timeout time.Duration, logOutput io.Writer) (*NetworkTransport, error) {
	return NewTLSTransportWithConfig(bindAddr, advertise, tlsConfig, &NetworkTransportConfig{
		MaxPool: maxPool,
		Timeout: timeout,
		Logger:  newTransportLogger(logOutput),
	})
}

// NewTLSTransportWithConfig is NewTLSTransport with the settings of config
// (VerifyPeer among them), whose Stream is set to the new TLS layer.
func NewTLSTransportWithConfig(bindAddr string, advertise net.Addr, tlsConfig *tls.Config, config *NetworkTransportConfig) (*NetworkTransport, error) {
	if err := checkTLSConfig(tlsConfig); err != nil {
		return nil, err
	}
	tcp, err := newTCPStreamLayer(bindAddr, advertise)
	if err != nil {
		return nil, err
	}
	stream, err := NewTLSStreamLayer(tcp, tlsConfig)
	if err != nil {
		_ = tcp.Close()
		return nil, err
	}
	config.Stream = stream
	return NewNetworkTransportWithConfig(config), nil
}

// Accept waits for the next incoming connection and returns it as the
// server side of a TLS session whose handshake has not run yet.
func (t *TLSStreamLayer) Accept() (net.Conn, error) {
	conn, err := t.inner.Accept()
	if err != nil {
		return nil, err
	}
	return tls.Server(conn, t.server), nil
}

// Dial connects to address and completes the TLS handshake, all within
// timeout (zero: no limit).
func (t *TLSStreamLayer) Dial(address ServerAddress, timeout time.Duration) (net.Conn, error) {
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	raw, err := t.inner.Dial(address, timeout)
	if err != nil {
		return nil, err
	}
	cfg := t.client
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(string(address))
		if err != nil {
			host = string(address)
		}
		cfg = cfg.Clone()
		cfg.ServerName = host
	}
	conn := tls.Client(raw, cfg)
	_ = conn.SetDeadline(deadline)
	if err := conn.HandshakeContext(context.Background()); err != nil {
		_ = raw.Close()
		return nil, fmt.Errorf("TLS handshake with %s: %w", address, err)
	}
	_ = conn.SetDeadline(time.Time{})
	return conn, nil
}

// Close stops listening.
func (t *TLSStreamLayer) Close() error {
	return t.inner.Close()
}

// Addr returns the inner layer's address.
func (t *TLSStreamLayer) Addr() net.Addr {
	return t.inner.Addr()
}
