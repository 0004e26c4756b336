// Package clustertls turns the cluster key into mutual TLS for every
// node-to-node channel (raft and the peer service).
//
// Every key deterministically yields one certificate authority: its Ed25519
// private key is HKDF-derived from the key, so each node holding the key can
// build the same CA without shipping one around, and no node holding a
// different key (or none) can. A node signs a fresh leaf certificate for
// itself at start-up with the CA of the key it sends with, and trusts the
// CAs of every key in its keyring. TLS 1.3 gives each connection fresh
// session keys, so a recorded connection can neither be read nor replayed.
package clustertls

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// ServerName is the name every node's leaf certificate carries and every
// node verifies: nodes are told apart by their keys, not by DNS names.
const ServerName = "pier-cluster"

// ErrNoKey is returned for an empty cluster key.
var ErrNoKey = errors.New("empty cluster key")

// Credentials are one node's TLS identity and the CAs it trusts.
type Credentials struct {
	cert  tls.Certificate
	roots *x509.CertPool
	// sessions lets a node resume TLS sessions with its peers: a full
	// handshake signs and verifies with Ed25519, which under -race on two
	// cores was enough to starve raft heartbeats. Tickets are sealed with
	// a key each process draws at start-up, so a restart (and so a key
	// rotation) invalidates them all.
	sessions tls.ClientSessionCache
}

// New builds credentials that send with the CA of key send and accept
// peers signed under send or any of accept. nodeID goes into the leaf's
// subject, for logs.
func New(nodeID, send string, accept ...string) (*Credentials, error) {
	if send == "" {
		return nil, ErrNoKey
	}
	roots := x509.NewCertPool()
	var sendCA *x509.Certificate
	var sendKey ed25519.PrivateKey
	for i, k := range append([]string{send}, accept...) {
		if k == "" {
			return nil, fmt.Errorf("accepted cluster key %d: %w", i, ErrNoKey)
		}
		ca, key, err := authority(k)
		if err != nil {
			return nil, err
		}
		roots.AddCert(ca)
		if i == 0 {
			sendCA, sendKey = ca, key
		}
	}
	cert, err := leaf(nodeID, sendCA, sendKey)
	if err != nil {
		return nil, err
	}
	return &Credentials{cert: cert, roots: roots, sessions: tls.NewLRUClientSessionCache(256)}, nil
}

// Server is the config for a listener: the peer must present a
// certificate signed under an accepted key.
func (c *Credentials) Server() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{c.cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    c.roots,
	}
}

// Client is the config for dialing another node.
func (c *Credentials) Client() *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		Certificates:       []tls.Certificate{c.cert},
		RootCAs:            c.roots,
		ServerName:         ServerName,
		ClientSessionCache: c.sessions,
	}
}

// authority derives key's CA. Everything in the certificate is fixed, so
// every node derives byte-identical CAs (Ed25519 signatures are
// deterministic); the subject names the key's fingerprint so that CAs of
// different keys never share a subject.
func authority(key string) (*x509.Certificate, ed25519.PrivateKey, error) {
	seed, err := hkdf.Key(sha256.New, []byte(key), nil, "pier cluster CA v1", ed25519.SeedSize)
	if err != nil {
		return nil, nil, fmt.Errorf("derive cluster CA: %w", err)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)
	fp := sha256.Sum256(pub)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "pier cluster CA " + hex.EncodeToString(fp[:8])},
		NotBefore:             time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign,
		SubjectKeyId:          fp[:20],
	}
	der, err := x509.CreateCertificate(nil, tmpl, tmpl, pub, priv)
	if err != nil {
		return nil, nil, fmt.Errorf("self-sign cluster CA: %w", err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("parse cluster CA: %w", err)
	}
	return ca, priv, nil
}

// leaf signs a fresh key pair for this process. It lives as long as the
// process does, so it is valid for decades; the clock skew allowance
// covers nodes whose clocks disagree by an hour.
func leaf(nodeID string, ca *x509.Certificate, caKey ed25519.PrivateKey) (tls.Certificate, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generate node key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certificate serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: nodeID},
		DNSNames:     []string{ServerName},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(30, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, pub, caKey)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("sign node certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}, nil
}
