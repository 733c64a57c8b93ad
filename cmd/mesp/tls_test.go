package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	kedautil "github.com/kedacore/keda/v2/pkg/util"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/mesp-project/mesp/internal/fixture"
	"github.com/mesp-project/mesp/scaler"
	"github.com/mesp-project/mesp/tlsfiles"
)

// TestScalerOverMutualTLSAndWritesWithAToken: `mesp serve` with the files
// `mesp certs` writes: HTTPS, a write token for pushes, and the scaler
// over mutual TLS. KEDA's generated client, with its TLS configuration
// built by KEDA's own code from the trigger's caCert, tlsClientCert and
// tlsClientKey, gets the decision; a client without a certificate, with
// one another CA signed, or without TLS is refused; a push without the
// token is refused and stores nothing.
func TestScalerOverMutualTLSAndWritesWithAToken(t *testing.T) {
	certs := t.TempDir()
	if _, err := tlsfiles.WriteSet(certs, []string{"localhost", "127.0.0.1"}, "keda", time.Hour); err != nil {
		t.Fatal(err)
	}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(certs, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	httpAddr, grpcAddr := freeAddr(t), freeAddr(t)
	cfg := filepath.Join(t.TempDir(), "mesp.yaml")
	os.WriteFile(cfg, fmt.Appendf(nil, `models: %[1]s
server:
  addr: "%[2]s"
  watch: false
  write_token: push-secret
  tls: {cert_file: %[4]s/server.crt, key_file: %[4]s/server.key}
scaler:
  grpc_addr: "%[3]s"
  tls: {cert_file: %[4]s/server.crt, key_file: %[4]s/server.key, client_ca_file: %[4]s/ca.crt}
log: {level: warn}
`, fixture.CopyModels(t), httpAddr, grpcAddr, certs), 0o644)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM([]byte(read("ca.crt")))
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	base := "https://" + httpAddr
	startServeOver(t, cfg, base, client)

	if resp, err := http.Get("http://" + httpAddr + "/healthz"); err == nil && resp.StatusCode == http.StatusOK {
		t.Fatal("plain HTTP served on the TLS port")
	}
	f := fixture.Rows(t)[0]
	end := time.Now().Unix() / 60
	var obs []string
	for m, c := range f.Counts {
		obs = append(obs, fmt.Sprintf(`{"id":%q,"minute":%q,"count":%g}`, f.ID, time.Unix((end-1440+int64(m))*60, 0).UTC().Format(time.RFC3339), c))
	}
	body := `{"observations":[` + strings.Join(obs, ",") + `]}`
	push := func(token string) int {
		req, _ := http.NewRequest(http.MethodPost, base+"/v1/observe", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, tok := range []string{"", "wrong"} {
		if code := push(tok); code != http.StatusUnauthorized {
			t.Fatalf("a push with token %q: %d", tok, code)
		}
	}
	if resp, err := client.Get(base + "/v1/history/" + f.ID); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("refused pushes stored history: %v %v", resp, err)
	}
	if code := push("push-secret"); code != http.StatusOK {
		t.Fatalf("a push with the token: %d", code)
	}

	ref := &externalscaler.ScaledObjectRef{Name: "fn", Namespace: "default", ScalerMetadata: map[string]string{scaler.KeyFunction: f.ID}}
	ask := func(creds grpc.DialOption) error {
		conn, err := grpc.NewClient(grpcAddr, creds)
		if err != nil {
			return err
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err = externalscaler.NewExternalScalerClient(conn).IsActive(ctx, ref)
		return err
	}
	// As KEDA's external trigger builds its connection (pkg/scalers/external_scaler.go).
	kedaTLS, err := kedautil.NewTLSConfig(read("client.crt"), read("client.key"), read("ca.crt"), false)
	if err != nil {
		t.Fatal(err)
	}
	if err := ask(grpc.WithTransportCredentials(credentials.NewTLS(kedaTLS))); err != nil {
		t.Fatalf("KEDA with its client certificate: %v", err)
	}
	noCert, _ := kedautil.NewTLSConfig("", "", read("ca.crt"), false)
	other, _ := tlsfiles.NewCA("other", time.Hour)
	oc, ok, _ := other.Issue("intruder", nil, true, time.Hour)
	intruder, _ := kedautil.NewTLSConfig(string(oc), string(ok), read("ca.crt"), false)
	for name, creds := range map[string]grpc.DialOption{
		"no client certificate":           grpc.WithTransportCredentials(credentials.NewTLS(noCert)),
		"a certificate another CA signed": grpc.WithTransportCredentials(credentials.NewTLS(intruder)),
		"no TLS":                          grpc.WithTransportCredentials(insecure.NewCredentials()),
	} {
		if err := ask(creds); status.Code(err) != codes.Unavailable {
			t.Errorf("%s: %v, want the connection refused", name, err)
		}
	}
}
