package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/mesp-project/mesp/tlsfiles"
)

func init() {
	register("certs", "write a private CA, a server certificate and a client certificate (for KEDA) for TLS and mutual TLS", runCerts)
}

// runCerts writes the files server.tls and scaler.tls name, where no
// cert-manager issues them (deploy/certificates.yaml does in a cluster).
func runCerts(_ context.Context, args []string) error {
	fs := pflag.NewFlagSet("certs", pflag.ContinueOnError)
	dir := fs.String("dir", "certs", "folder to write ca.crt, server.crt, server.key, client.crt and client.key into (must not hold them yet)")
	hosts := fs.String("hosts", "localhost,127.0.0.1,mesp.mesp.svc,mesp.mesp.svc.cluster.local,*.mesp-pods.mesp.svc,*.mesp-pods.mesp.svc.cluster.local", "comma-separated DNS names (each replica of deploy/'s StatefulSet through its headless Service) and IP addresses of the server's certificate")
	client := fs.String("client", "keda", "name in the client certificate")
	valid := fs.Duration("valid", 365*24*time.Hour, "how long the certificates are valid")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var hs []string
	for _, h := range strings.Split(*hosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			hs = append(hs, h)
		}
	}
	if len(hs) == 0 {
		return fmt.Errorf("--hosts: name at least one host")
	}
	written, err := tlsfiles.WriteSet(*dir, hs, *client, *valid)
	for _, p := range written {
		fmt.Println(p)
	}
	return err
}
