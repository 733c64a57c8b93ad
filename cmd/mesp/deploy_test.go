package main

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/mesp-project/mesp/config"
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
	so := yamlDocs(t, filepath.Join("..", "..", "deploy", "scaledobject.yaml"))[0]
	trig := so["spec"].(map[string]any)["triggers"].([]any)[0].(map[string]any)
	md := trig["metadata"].(map[string]any)
	if _, port, _ := net.SplitHostPort(md["scalerAddress"].(string)); port != grpcPort {
		t.Fatalf("scalerAddress %v, Service grpc port %q", md["scalerAddress"], grpcPort)
	}
	known := []string{"scalerAddress", scaler.KeyFunction, scaler.KeyThreshold, scaler.KeyDemandMinutes, scaler.KeyTarget}
	for k := range md {
		if !slices.Contains(known, k) {
			t.Errorf("ScaledObject metadata %q is not a key the scaler reads", k)
		}
	}
	if !slices.Contains(cfg.Prometheus.Functions, md[scaler.KeyFunction].(string)) {
		t.Errorf("the ScaledObject's function %v is not in prometheus.functions %v", md[scaler.KeyFunction], cfg.Prometheus.Functions)
	}
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
