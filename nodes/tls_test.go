package nodes_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ergo-services/ergo/gen"

	"github.com/skynode/skynode/nodes"
	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup/ergotest"
)

// testCA writes a certificate authority and a node certificate it signed
// for 127.0.0.1 into dir, as PEM files: ca.pem, node.pem, node-key.pem.
func testCA(t *testing.T, dir string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "skynode test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "skynode node"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for name, block := range map[string]*pem.Block{
		"ca.pem":       {Type: "CERTIFICATE", Bytes: caDER},
		"node.pem":     {Type: "CERTIFICATE", Bytes: leafDER},
		"node-key.pem": {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// Node links run over mutual TLS when the cluster has certificates: a
// message crosses, the distribution port speaks TLS and demands a client
// certificate, and a node whose certificate another authority signed
// cannot link.
func TestNodeLinksOverTLS(t *testing.T) {
	good, other := t.TempDir(), t.TempDir()
	testCA(t, good)
	testCA(t, other)
	port := freePort(t)
	distPort := freePort(t)
	conf := func(dir string) *nodes.Config {
		cfg, err := nodes.ParseConfig([]byte(fmt.Sprintf(`
[cluster]
cookie = "tls-test"
seeds = ["127.0.0.1:%d"]
tls_cert_file = %q
tls_key_file = %q
tls_ca_file = %q
[[node]]
name = "tlsa"
gossip_port = %d
dist_port = %d
[[node]]
name = "tlsb"
[[node]]
name = "tlsc"
`, port, filepath.Join(dir, "node.pem"), filepath.Join(dir, "node-key.pem"), filepath.Join(dir, "ca.pem"), port, distPort)))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	a := startNamed(t, conf(good), "tlsa")
	b := startNamed(t, conf(good), "tlsb")
	_, inbox := ergotest.Recorder(t, a.Ergo(), "inbox")
	sender, _ := ergotest.Recorder(t, b.Ergo(), "")
	to := gen.ProcessID{Name: "inbox", Node: a.Name()}
	ergotest.CheckFor(t, 20*time.Second, 10*time.Millisecond, func() error {
		return sender.Send(to, proto.Kick{Reason: "over tls"})
	})
	if k := ergotest.Next[proto.Kick](t, inbox, 10*time.Second, nil); k.Reason != "over tls" {
		t.Fatalf("got %+v", k)
	}

	// The port speaks TLS and refuses a client without a certificate.
	pool := x509.NewCertPool()
	caPEM, err := os.ReadFile(filepath.Join(good, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool.AppendCertsFromPEM(caPEM)
	addr := fmt.Sprintf("127.0.0.1:%d", distPort)
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13})
	if err == nil {
		// TLS 1.3 reports a missing client certificate on the first read.
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = conn.Read(make([]byte, 1))
		conn.Close()
	}
	if err == nil {
		t.Fatal("the distribution port accepted a client without a certificate")
	}

	// A node with a certificate from another authority gets no link.
	c := startNamed(t, conf(other), "tlsc")
	stranger, _ := ergotest.Recorder(t, c.Ergo(), "")
	ergotest.CheckFor(t, 20*time.Second, 10*time.Millisecond, func() error {
		for _, m := range c.Members() {
			if m.Name == a.Name() && m.Alive && m.ErgoPort > 0 {
				return nil
			}
		}
		return fmt.Errorf("%s does not see %s by gossip", c.Name(), a.Name())
	})
	for range 3 {
		_ = stranger.Send(to, proto.Kick{Reason: "from a stranger"})
	}
	select {
	case m := <-inbox:
		t.Fatalf("a message crossed from the node with the wrong certificate: %v", m)
	case <-time.After(2 * time.Second):
	}
}
