package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/mesp-project/mesp/config"
	"github.com/mesp-project/mesp/promread"
	"github.com/mesp-project/mesp/scaler"
)

// The Kubernetes manifests in deploy/ agree with the binary: the
// ConfigMap's config loads (strict keys), the ScaledObject's trigger
// reaches the Service's gRPC port with metadata the scaler knows, for a
// function the Prometheus reader is configured to read.
func TestDeployManifestsAgreeWithTheBinary(t *testing.T) {
	docs := yamlDocs(t, filepath.Join("..", "..", "deploy", "mesp.yaml"))
	var cfgText, grpcPort string
	for _, d := range docs {
		switch d["kind"] {
		case "ConfigMap":
			cfgText = d["data"].(map[string]any)["mesp.yaml"].(string)
		case "Service":
			for _, p := range d["spec"].(map[string]any)["ports"].([]any) {
				if p := p.(map[string]any); p["name"] == "grpc" {
					grpcPort = strings.TrimSpace(strings.Trim(yamlString(p["port"]), `"`))
				}
			}
		}
	}
	path := filepath.Join(t.TempDir(), "mesp.yaml")
	os.WriteFile(path, []byte(cfgText), 0o644)
	cfg, err := config.Load(path, nil, nil)
	if err != nil {
		t.Fatalf("the ConfigMap's config: %v", err)
	}
	if _, port, _ := net.SplitHostPort(cfg.Scaler.GRPCAddr); port != grpcPort {
		t.Fatalf("scaler.grpc_addr %q, Service grpc port %q", cfg.Scaler.GRPCAddr, grpcPort)
	}
	var so map[string]any
	for _, d := range yamlDocs(t, filepath.Join("..", "..", "deploy", "scaledobject.yaml")) {
		if d["kind"] == "ScaledObject" {
			so = d
		}
	}
	trig := so["spec"].(map[string]any)["triggers"].([]any)[0].(map[string]any)
	md := trig["metadata"].(map[string]any)
	if _, port, _ := net.SplitHostPort(md["scalerAddress"].(string)); port != grpcPort {
		t.Fatalf("scalerAddress %v, Service grpc port %q", md["scalerAddress"], grpcPort)
	}
	known := []string{"scalerAddress", scaler.KeyFunction, scaler.KeyThreshold, scaler.KeyDemandMinutes, scaler.KeyTarget, scaler.KeyQuantile, scaler.KeyFloor}
	for k := range md {
		if !slices.Contains(known, k) {
			t.Errorf("ScaledObject metadata %q is not a key the scaler reads", k)
		}
	}
	// the ScaledObject's function is one the reader reads: listed for a
	// query with $name; for the fleet's grouped query, not left out by the
	// list or the match
	fn := md[scaler.KeyFunction].(string)
	grouped := !strings.Contains(cfg.Prometheus.Query, promread.NamePlaceholder)
	listed := slices.Contains(cfg.Prometheus.Functions, fn)
	if !grouped && !listed || grouped && len(cfg.Prometheus.Functions) > 0 && !listed {
		t.Errorf("the ScaledObject's function %v is not in prometheus.functions %v", fn, cfg.Prometheus.Functions)
	}
	if grouped && cfg.Prometheus.Match != "" && !regexp.MustCompile(cfg.Prometheus.Match).MatchString(fn) {
		t.Errorf("the ScaledObject's function %v does not match prometheus.match %q", fn, cfg.Prometheus.Match)
	}
	checkDeploySecurity(t, docs, cfg, so, trig)
	checkDeployFleet(t, docs, cfg)
}

// checkDeployFleet: the StatefulSet splits the fleet as the binary will:
// the config takes each replica's index from its pod name's ordinal, the
// replica count in the environment is the StatefulSet's, the headless
// Service gives each replica the name its certificate covers, and a pod
// named as the StatefulSet names them resolves to its index.
func checkDeployFleet(t *testing.T, docs []map[string]any, cfg config.Config) {
	t.Helper()
	var sts, headless map[string]any
	for _, d := range docs {
		switch {
		case d["kind"] == "StatefulSet":
			sts = d
		case d["kind"] == "Service" && dig(d, "spec")["clusterIP"] == "None":
			headless = d
		}
	}
	if sts == nil || headless == nil {
		t.Fatalf("deploy/mesp.yaml: StatefulSet %v, headless Service %v", sts != nil, headless != nil)
	}
	if dig(sts, "spec")["serviceName"] != dig(headless, "metadata")["name"] {
		t.Errorf("the StatefulSet's serviceName %v is not the headless Service %v", dig(sts, "spec")["serviceName"], dig(headless, "metadata")["name"])
	}
	// make bench-fleet measures the server under the deployed Go memory
	// limit: the Makefile's literal is the ConfigMap's
	mk, err := os.ReadFile(filepath.Join("..", "..", "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^FLEET_GO_MEMORY_LIMIT \?= (\d+)$`).FindSubmatch(mk)
	if m == nil || string(m[1]) != strconv.FormatInt(cfg.Server.GoMemoryLimitBytes, 10) || cfg.Server.GoMemoryLimitBytes == 0 {
		t.Errorf("the Makefile's FLEET_GO_MEMORY_LIMIT %q, the ConfigMap's server.go_memory_limit_bytes %d: want the same, set", m, cfg.Server.GoMemoryLimitBytes)
	}
	if cfg.Shard.Index != -1 {
		t.Errorf("shard.index %d in the ConfigMap, want -1 (the pod name's ordinal)", cfg.Shard.Index)
	}
	replicas := strings.TrimSpace(yamlString(dig(sts, "spec")["replicas"]))
	ctr := dig(sts, "spec", "template", "spec")["containers"].([]any)[0].(map[string]any)
	var envReplicas string
	for _, e := range ctr["env"].([]any) {
		if e := e.(map[string]any); e["name"] == "MESP_SHARD__REPLICAS" {
			envReplicas = strings.Trim(strings.TrimSpace(yamlString(e["value"])), `"`)
		}
	}
	if envReplicas != replicas {
		t.Errorf("MESP_SHARD__REPLICAS %q, the StatefulSet's replicas %q: they must agree", envReplicas, replicas)
	}
	name := dig(sts, "metadata")["name"].(string)
	last := 2 // the third replica of a fleet of three
	fleet := cfg.Shard
	fleet.Replicas = 3
	if i, err := fleet.ShardIndex(fmt.Sprintf("%s-%d", name, last)); err != nil || i != last {
		t.Errorf("pod %s-%d: shard index %d, %v", name, last, i, err)
	}
	host := fmt.Sprintf("%s-%d.%s.%s.svc", name, last, dig(headless, "metadata")["name"], dig(headless, "metadata")["namespace"])
	var dns []any
	for _, d := range yamlDocs(t, filepath.Join("..", "..", "deploy", "certificates.yaml")) {
		if d["kind"] == "Certificate" && dig(d, "spec")["secretName"] == "mesp-tls" {
			dns = dig(d, "spec")["dnsNames"].([]any)
		}
	}
	covered := false
	for _, n := range dns {
		n := n.(string)
		covered = covered || n == host || strings.HasPrefix(n, "*.") && strings.HasSuffix(host, n[1:]) && !strings.Contains(strings.TrimSuffix(host, n[1:]), ".")
	}
	if !covered {
		t.Errorf("the server certificate %v does not cover replica %s", dns, host)
	}
}

// checkDeploySecurity: deploy/ ships TLS, mutual TLS for KEDA, a write
// token and a NetworkPolicy on, and its pieces name each other right: the
// config's certificate files lie in the mounted Secret that
// certificates.yaml issues for the scalerAddress's host; KEDA's
// TriggerAuthentication gives the three parameters its external trigger
// reads, from the client Secret issued in the ScaledObject's namespace.
func checkDeploySecurity(t *testing.T, docs []map[string]any, cfg config.Config, so, trig map[string]any) {
	t.Helper()
	if !cfg.Server.TLS.Files().Enabled() || cfg.Scaler.TLS.ClientCAFile == "" {
		t.Fatalf("deploy/ serves without TLS or the scaler without mutual TLS: %+v %+v", cfg.Server.TLS, cfg.Scaler.TLS)
	}
	kinds := map[string]map[string]any{}
	for _, d := range docs {
		kinds[d["kind"].(string)] = d
	}
	sts := kinds["StatefulSet"]
	pod := dig(sts, "spec", "template", "spec")
	ctr := pod["containers"].([]any)[0].(map[string]any)
	mounts := map[string]string{}
	for _, m := range ctr["volumeMounts"].([]any) {
		m := m.(map[string]any)
		mounts[m["name"].(string)] = m["mountPath"].(string)
	}
	secrets := map[string]string{} // mount path: secret
	for _, v := range pod["volumes"].([]any) {
		v := v.(map[string]any)
		if sec, ok := v["secret"].(map[string]any); ok {
			secrets[mounts[v["name"].(string)]] = sec["secretName"].(string)
		}
	}
	for _, f := range []string{cfg.Server.TLS.CertFile, cfg.Server.TLS.KeyFile, cfg.Scaler.TLS.CertFile, cfg.Scaler.TLS.KeyFile, cfg.Scaler.TLS.ClientCAFile} {
		if secrets[filepath.Dir(f)] != "mesp-tls" {
			t.Errorf("%s is not in the mounted Secret mesp-tls (%v)", f, secrets)
		}
	}
	// each replica's pushed history on its own claim (volumeClaimTemplates)
	claims := map[string]bool{}
	for _, v := range dig(sts, "spec")["volumeClaimTemplates"].([]any) {
		claims[dig(v.(map[string]any), "metadata")["name"].(string)] = true
	}
	var snapshotVolume string
	for name, path := range mounts {
		if path == filepath.Dir(cfg.History.Snapshot) {
			snapshotVolume = name
		}
	}
	if cfg.History.Snapshot == "" || !claims[snapshotVolume] {
		t.Errorf("pushed history is not kept on a replica's claim: snapshot %q on volume %q, claim templates %v", cfg.History.Snapshot, snapshotVolume, claims)
	}
	env := yamlString(ctr["env"])
	if !strings.Contains(env, "MESP_SERVER__WRITE_TOKEN") || !strings.Contains(env, "secretKeyRef") {
		t.Errorf("no write token from a Secret: %s", env)
	}
	for _, probe := range []string{"readinessProbe", "livenessProbe"} {
		if get := dig(ctr, probe, "httpGet"); get == nil || get["scheme"] != "HTTPS" {
			t.Errorf("%s does not speak HTTPS: %v", probe, ctr[probe])
		}
	}
	np := kinds["NetworkPolicy"]
	if np == nil {
		t.Fatal("no NetworkPolicy")
	}
	if !slices.Contains(dig(np, "spec")["policyTypes"].([]any), any("Ingress")) {
		t.Errorf("the NetworkPolicy does not restrict ingress")
	}
	allowed := map[string]string{} // port: namespace
	for _, rule := range dig(np, "spec")["ingress"].([]any) {
		rule := rule.(map[string]any)
		from := rule["from"].([]any)
		port := rule["ports"].([]any)[0].(map[string]any)["port"].(string)
		if len(from) != 1 {
			t.Errorf("rule for %s admits %d sources", port, len(from))
		}
		allowed[port] = yamlString(dig(from[0].(map[string]any), "namespaceSelector", "matchLabels"))
	}
	if !strings.Contains(allowed["grpc"], "keda") || !strings.Contains(allowed["http"], "monitoring") || len(allowed) != 2 {
		t.Errorf("the NetworkPolicy admits %v, want KEDA on grpc and Prometheus on http only", allowed)
	}

	certs := map[string]map[string]any{} // secretName: Certificate
	for _, d := range yamlDocs(t, filepath.Join("..", "..", "deploy", "certificates.yaml")) {
		if d["kind"] == "Certificate" {
			certs[dig(d, "spec")["secretName"].(string)] = d
		}
	}
	server := certs["mesp-tls"]
	host, _, _ := net.SplitHostPort(dig(trig, "metadata")["scalerAddress"].(string))
	if server == nil || dig(server, "metadata")["namespace"] != "mesp" || !slices.Contains(dig(server, "spec")["dnsNames"].([]any), any(host)) {
		t.Errorf("certificates.yaml issues no mesp-tls in namespace mesp for %s: %v", host, server)
	}
	var auth map[string]any
	for _, d := range yamlDocs(t, filepath.Join("..", "..", "deploy", "scaledobject.yaml")) {
		if d["kind"] == "TriggerAuthentication" {
			auth = d
		}
	}
	if auth == nil || dig(trig, "authenticationRef")["name"] != dig(auth, "metadata")["name"] {
		t.Fatalf("the trigger's authenticationRef does not name a TriggerAuthentication")
	}
	params := map[string]string{}
	for _, r := range dig(auth, "spec")["secretTargetRef"].([]any) {
		r := r.(map[string]any)
		params[r["parameter"].(string)] = r["name"].(string)
	}
	ns := dig(so, "metadata")["namespace"]
	for _, p := range []string{"caCert", "tlsClientCert", "tlsClientKey"} {
		c := certs[params[p]]
		if c == nil || dig(c, "metadata")["namespace"] != ns || !slices.Contains(dig(c, "spec")["usages"].([]any), any("client auth")) {
			t.Errorf("TriggerAuthentication %s from Secret %q: no client certificate issued there in namespace %v", p, params[p], ns)
		}
	}
	if dig(so, "spec", "fallback") == nil {
		t.Errorf("the ScaledObject has no fallback for when MESP answers Unavailable")
	}
}

// dig walks nested YAML maps (nil when a key is missing).
func dig(m map[string]any, keys ...string) map[string]any {
	for _, k := range keys {
		next, ok := m[k].(map[string]any)
		if !ok {
			return nil
		}
		m = next
	}
	return m
}

func yamlDocs(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var out []map[string]any
	for {
		var d map[string]any
		if err := dec.Decode(&d); errors.Is(err, io.EOF) {
			return out
		} else if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, d)
	}
}

func yamlString(v any) string {
	b, _ := yaml.Marshal(v)
	return string(b)
}
