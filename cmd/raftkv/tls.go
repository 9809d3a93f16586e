package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/quorumkit/raft"
)

// tlsSetup is a server's certificate and the cluster's CA, loaded from the
// -ca, -cert and -key files. One CA signs every server and every client:
// it is the only one trusted, for raft traffic and for the HTTP API.
type tlsSetup struct {
	cert tls.Certificate
	ca   *x509.CertPool
}

// loadTLS reads the three files, all given or none (nil, nil). The
// certificate must name id (see certID), since peers bind raft
// connections to the ID their certificate names.
func loadTLS(caFile, certFile, keyFile, id string) (*tlsSetup, error) {
	if caFile == "" && certFile == "" && keyFile == "" {
		return nil, nil
	}
	if caFile == "" || certFile == "" || keyFile == "" {
		return nil, errors.New("-ca, -cert and -key go together: give all three or none")
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("reading the CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", caFile)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("loading the certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("parsing the certificate: %w", err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, fmt.Errorf("the certificate %s is not signed by the CA %s: %w", certFile, caFile, err)
	}
	if got, err := certID(leaf); err != nil || string(got) != id {
		return nil, fmt.Errorf("the certificate %s must name this server's ID %q as its common name (it names %q): peers bind raft connections to it", certFile, id, leaf.Subject.CommonName)
	}
	return &tlsSetup{cert: cert, ca: pool}, nil
}

// certID is the server ID a certificate speaks for: its common name, or,
// without one, its only DNS name.
func certID(cert *x509.Certificate) (raft.ServerID, error) {
	if cert.Subject.CommonName != "" {
		return raft.ServerID(cert.Subject.CommonName), nil
	}
	if len(cert.DNSNames) == 1 {
		return raft.ServerID(cert.DNSNames[0]), nil
	}
	return "", errors.New("the certificate names no server ID: it has no common name and not exactly one DNS name")
}

// verifyPeer binds an incoming raft connection, whose certificate the
// handshake verified against the CA, to the server ID the certificate
// names: the transport then refuses any RPC on it that claims another ID.
func verifyPeer(cert *x509.Certificate, _ net.Addr) (raft.ServerID, error) {
	return certID(cert)
}

// raftConfig is the TLS configuration of raft traffic: this server's
// certificate both ways, and only the CA trusted.
func (t *tlsSetup) raftConfig() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{t.cert},
		RootCAs:      t.ca,
		ClientCAs:    t.ca,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	}
}

// serverConfig is the HTTPS configuration of the API: every client must
// present a certificate from the CA, whatever route it asks for.
func (t *tlsSetup) serverConfig() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{t.cert},
		ClientCAs:    t.ca,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"h2", "http/1.1"},
	}
}

// httpClient is the client a server uses to call another (joining): it
// trusts only the CA and presents this server's certificate.
func (t *tlsSetup) httpClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{
		Certificates: []tls.Certificate{t.cert},
		RootCAs:      t.ca,
		MinVersion:   tls.VersionTLS12,
	}
	return &http.Client{Transport: tr, Timeout: 15 * time.Second}
}

// hasClientCert reports whether a request came over TLS with a client
// certificate the handshake verified against the CA.
func hasClientCert(r *http.Request) bool {
	return r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && !slices.ContainsFunc(r.TLS.VerifiedChains, func(c []*x509.Certificate) bool { return len(c) == 0 })
}
