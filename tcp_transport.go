package raft

import (
	"errors"
	"io"
	"net"
	"time"

	"github.com/hashicorp/go-hclog"
)

// The texts of these errors are hashicorp/raft's.
var (
	errNotAdvertisable = errors.New("local bind address is not advertisable")
	errNotTCP          = errors.New("local address is not a TCP address")
)

// TCPStreamLayer is a StreamLayer over plain TCP.
type TCPStreamLayer struct {
	advertise net.Addr
	listener  *net.TCPListener
}

// NewTCPTransport listens on bindAddr and returns a NetworkTransport over
// TCP. advertise is the address peers should dial; nil means the listener's
// own address, which then must be a specific IP (not 0.0.0.0). See
// NewNetworkTransport for maxPool, timeout and logOutput.
func NewTCPTransport(bindAddr string, advertise net.Addr, maxPool int, timeout time.Duration, logOutput io.Writer) (*NetworkTransport, error) {
	return newTCPTransport(bindAddr, advertise, func(stream StreamLayer) *NetworkTransport {
		return NewNetworkTransport(stream, maxPool, timeout, logOutput)
	})
}

// NewTCPTransportWithLogger is NewTCPTransport with a logger instead of an
// output.
func NewTCPTransportWithLogger(bindAddr string, advertise net.Addr, maxPool int, timeout time.Duration, logger hclog.Logger) (*NetworkTransport, error) {
	return newTCPTransport(bindAddr, advertise, func(stream StreamLayer) *NetworkTransport {
		return NewNetworkTransportWithLogger(stream, maxPool, timeout, logger)
	})
}

// NewTCPTransportWithConfig is NewTCPTransport with the settings of config,
// whose Stream is set to the new TCP layer.
func NewTCPTransportWithConfig(bindAddr string, advertise net.Addr, config *NetworkTransportConfig) (*NetworkTransport, error) {
	return newTCPTransport(bindAddr, advertise, func(stream StreamLayer) *NetworkTransport {
		config.Stream = stream
		return NewNetworkTransportWithConfig(config)
	})
}

// newTCPTransport binds the listener, checks that the address peers will
// dial is usable, and has build make the transport.
func newTCPTransport(bindAddr string, advertise net.Addr, build func(StreamLayer) *NetworkTransport) (*NetworkTransport, error) {
	stream, err := newTCPStreamLayer(bindAddr, advertise)
	if err != nil {
		return nil, err
	}
	return build(stream), nil
}

// newTCPStreamLayer listens on bindAddr and checks that the address peers
// will dial is a specific TCP address. The listener is closed on error.
func newTCPStreamLayer(bindAddr string, advertise net.Addr) (*TCPStreamLayer, error) {
	list, err := net.Listen("tcp", bindAddr)
	if err != nil {
		return nil, err
	}
	stream := &TCPStreamLayer{advertise: advertise, listener: list.(*net.TCPListener)}
	if err := checkAdvertisable(stream.Addr()); err != nil {
		_ = list.Close()
		return nil, err
	}
	return stream, nil
}

// checkAdvertisable reports whether addr is a TCP address that peers can
// dial.
func checkAdvertisable(addr net.Addr) error {
	tcpAddr, ok := addr.(*net.TCPAddr)
	if !ok {
		return errNotTCP
	}
	if tcpAddr.IP == nil || tcpAddr.IP.IsUnspecified() {
		return errNotAdvertisable
	}
	return nil
}

// Dial connects to address over TCP within timeout.
func (t *TCPStreamLayer) Dial(address ServerAddress, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("tcp", string(address), timeout)
}

// Accept waits for the next incoming connection.
func (t *TCPStreamLayer) Accept() (c net.Conn, err error) {
	return t.listener.Accept()
}

// Close stops listening.
func (t *TCPStreamLayer) Close() (err error) {
	return t.listener.Close()
}

// Addr returns the advertised address if one was given, else the
// listener's address.
func (t *TCPStreamLayer) Addr() net.Addr {
	if t.advertise != nil {
		return t.advertise
	}
	return t.listener.Addr()
}
