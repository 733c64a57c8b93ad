package tlsfiles_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mesp-project/mesp/tlsfiles"
)

// serveTLS accepts connections with cfg and completes each handshake.
func serveTLS(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				c.(*tls.Conn).Handshake()
				c.Write([]byte("x"))
				c.Close()
			}()
		}
	}()
	return ln.Addr().String()
}

// dial completes a handshake as a client and returns the server's
// certificate's name.
func dial(addr string, roots *x509.CertPool, client []tls.Certificate) (string, error) {
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, Certificates: client, ServerName: "mesp.test"})
	if err != nil {
		return "", err
	}
	defer c.Close()
	// With TLS 1.3 a refused client certificate shows at the first read.
	if _, err := c.Read(make([]byte, 1)); err != nil {
		return "", err
	}
	return c.ConnectionState().PeerCertificates[0].Subject.CommonName, nil
}

func TestServerConfigReloadsAndRequiresClientCertificates(t *testing.T) {
	dir := t.TempDir()
	ca, err := tlsfiles.NewCA("test-ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) {
		t.Helper()
		// As a secret mount renews: a new file moved over the old.
		tmp := filepath.Join(dir, name+".tmp")
		if err := os.WriteFile(tmp, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	issue := func(name string) {
		cert, key, err := ca.Issue(name, []string{"mesp.test", "127.0.0.1"}, false, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		write("server.crt", cert)
		write("server.key", key)
	}
	issue("first")
	write("ca.crt", ca.PEM())
	var mu sync.Mutex
	var reported []error
	files := tlsfiles.Files{Cert: filepath.Join(dir, "server.crt"), Key: filepath.Join(dir, "server.key"), ClientCA: filepath.Join(dir, "ca.crt")}
	cfg, err := files.ServerConfig(func(err error) { mu.Lock(); reported = append(reported, err); mu.Unlock() })
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, cfg)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.PEM())
	ccert, ckey, _ := ca.Issue("keda", nil, true, time.Hour)
	clientCert, err := tls.X509KeyPair(ccert, ckey)
	if err != nil {
		t.Fatal(err)
	}
	client := []tls.Certificate{clientCert}

	if name, err := dial(addr, roots, client); err != nil || name != "first" {
		t.Fatalf("with a client certificate: %q %v", name, err)
	}
	if _, err := dial(addr, roots, nil); err == nil {
		t.Fatal("a client without a certificate was served")
	}
	other, _ := tlsfiles.NewCA("other-ca", time.Hour)
	oc, ok, _ := other.Issue("intruder", nil, true, time.Hour)
	intruder, _ := tls.X509KeyPair(oc, ok)
	if _, err := dial(addr, roots, []tls.Certificate{intruder}); err == nil {
		t.Fatal("a client certificate from another CA was served")
	}

	time.Sleep(1100 * time.Millisecond) // the files are looked at once a second at most
	issue("renewed")
	if name, err := dial(addr, roots, client); err != nil || name != "renewed" {
		t.Fatalf("after renewal: %q %v", name, err)
	}

	time.Sleep(1100 * time.Millisecond)
	write("server.crt", []byte("-----BEGIN CERTIFICATE-----\ntruncated"))
	if name, err := dial(addr, roots, client); err != nil || name != "renewed" {
		t.Fatalf("after a corrupt renewal: %q %v, want the last good certificate", name, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reported) == 0 || !strings.Contains(reported[0].Error(), "keeping the certificate") {
		t.Fatalf("the corrupt file was not reported: %v", reported)
	}
}

func TestFilesAreCheckedWhole(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name  string
		files tlsfiles.Files
		want  string
	}{
		{"key without certificate", tlsfiles.Files{Key: "k"}, "both"},
		{"client CA alone", tlsfiles.Files{ClientCA: "ca"}, "needs a certificate"},
		{"missing files", tlsfiles.Files{Cert: filepath.Join(dir, "no.crt"), Key: filepath.Join(dir, "no.key")}, "no such file"},
	}
	for _, c := range cases {
		if _, err := c.files.ServerConfig(nil); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	written, err := tlsfiles.WriteSet(dir, []string{"mesp"}, "keda", time.Hour)
	if err != nil || len(written) != 5 {
		t.Fatalf("WriteSet: %v %v", written, err)
	}
	if _, err := tlsfiles.WriteSet(dir, []string{"mesp"}, "keda", time.Hour); !errors.Is(err, os.ErrExist) {
		t.Fatalf("a second set over the first: %v", err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "server.key")); fi.Mode().Perm() != 0o600 {
		t.Fatalf("server.key mode %v", fi.Mode())
	}
	files := tlsfiles.Files{Cert: filepath.Join(dir, "server.crt"), Key: filepath.Join(dir, "server.key"), ClientCA: filepath.Join(dir, "ca.crt")}
	if _, err := files.ServerConfig(nil); err != nil {
		t.Fatalf("the written set: %v", err)
	}
}
