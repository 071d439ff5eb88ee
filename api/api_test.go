package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"gopkg.in/yaml.v3"

	"github.com/dtc-project/dtc/api"
)

var update = flag.Bool("update", false, "rewrite openapi.json from openapi.yaml")

// yamlToJSON converts the YAML document to indented JSON with sorted keys.
func yamlToJSON(t *testing.T, y []byte) []byte {
	t.Helper()
	var doc any
	if err := yaml.Unmarshal(y, &doc); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatalf("openapi.yaml as JSON: %v", err)
	}
	return append(b, '\n')
}

// The JSON the daemon serves is the YAML people edit.
func TestJSONIsTheYAML(t *testing.T) {
	want := yamlToJSON(t, api.OpenAPIYAML)
	if *update {
		if err := os.WriteFile("openapi.json", want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if !bytes.Equal(api.OpenAPIJSON, want) {
		t.Fatal("openapi.json is not openapi.yaml: run go test ./api -update")
	}
}

// The description is a valid OpenAPI 3.1 document.
func TestDescriptionIsValid(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(api.OpenAPIJSON)
	if err != nil {
		t.Fatalf("loading: %v", err)
	}
	if !doc.IsOpenAPI31OrLater() {
		t.Fatalf("openapi %q: want 3.1", doc.OpenAPI)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("invalid: %v", err)
	}
	for _, p := range []string{"/v1/transactions", "/v1/transactions/{id}", "/v1/stats", "/v1/openapi.json", "/ui/", "/metrics", "/healthz", "/readyz"} {
		if doc.Paths.Find(p) == nil {
			t.Errorf("path %s is not described", p)
		}
	}
}
