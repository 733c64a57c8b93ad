// Package tlsfiles serves TLS from PEM files on disk, read again when they
// change: cert-manager and Kubernetes secret mounts renew certificates in
// place, and a server must take the new one without a restart. With a
// client CA, clients must present a certificate it signed (mutual TLS, as
// KEDA's external trigger speaks it with caCert, tlsClientCert and
// tlsClientKey).
package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// Files names a server's certificate, its key and, for mutual TLS, the CA
// that signs client certificates.
type Files struct {
	Cert, Key, ClientCA string
}

// Enabled says whether the files turn TLS on.
func (f Files) Enabled() bool { return f.Cert != "" || f.Key != "" || f.ClientCA != "" }

// Check refuses an incomplete set: a certificate without its key or the
// other way round, or a client CA without a certificate to serve.
func (f Files) Check(what string) error {
	switch {
	case (f.Cert == "") != (f.Key == ""):
		return fmt.Errorf("%s: give both the certificate and the key file, or neither", what)
	case f.ClientCA != "" && f.Cert == "":
		return fmt.Errorf("%s: a client CA needs a certificate and key to serve TLS with", what)
	}
	return nil
}

// ServerConfig is a TLS server configuration that reads the files now
// (an error if they do not load) and again at a handshake after any of
// them changed; a change that does not load keeps the last good files in
// service and is reported to onError.
func (f Files) ServerConfig(onError func(error)) (*tls.Config, error) {
	if err := f.Check("tls"); err != nil {
		return nil, err
	}
	r := &reloader{files: f, onError: onError}
	if err := r.load(); err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return r.config(), nil
		},
	}, nil
}

// reloader holds the files' last good configuration.
type reloader struct {
	files   Files
	onError func(error)

	mu      sync.Mutex
	current *tls.Config
	stamps  [3]stamp
	checked time.Time
}

// stamp is what says a file changed.
type stamp struct {
	mod  time.Time
	size int64
}

// checkEvery bounds how often the files are looked at: a handshake storm
// must not become a stat storm.
const checkEvery = time.Second

func (r *reloader) config() *tls.Config {
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.checked) >= checkEvery {
		r.checked = time.Now()
		if st, err := r.stamp(); err == nil && st != r.stamps {
			if err := r.loadLocked(); err != nil && r.onError != nil {
				r.onError(fmt.Errorf("tls: keeping the certificate in service: %w", err))
			}
		}
	}
	return r.current
}

func (r *reloader) stamp() ([3]stamp, error) {
	var out [3]stamp
	for i, p := range []string{r.files.Cert, r.files.Key, r.files.ClientCA} {
		if p == "" {
			continue
		}
		fi, err := os.Stat(p)
		if err != nil {
			return out, err
		}
		out[i] = stamp{fi.ModTime(), fi.Size()}
	}
	return out, nil
}

func (r *reloader) load() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.loadLocked()
}

func (r *reloader) loadLocked() error {
	st, err := r.stamp()
	if err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(r.files.Cert, r.files.Key)
	if err != nil {
		return fmt.Errorf("tls: %s and %s: %w", r.files.Cert, r.files.Key, err)
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}
	if r.files.ClientCA != "" {
		pem, err := os.ReadFile(r.files.ClientCA)
		if err != nil {
			return fmt.Errorf("tls: client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("tls: client CA %s: %w", r.files.ClientCA, errNoCertificates)
		}
		c.ClientCAs, c.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	r.current, r.stamps, r.checked = c, st, time.Now()
	return nil
}

var errNoCertificates = errors.New("no PEM certificates in the file")
