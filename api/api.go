// Package api holds the OpenAPI 3.1 description of dtc's HTTP API: openapi.yaml is the
// source people edit, openapi.json its twin that the daemon serves at /v1/openapi.json.
// After editing the YAML, run `go test ./api -update` to write the JSON; the tests fail
// while the two differ, and httpnet's end-to-end API tests validate every request and
// answer they make against it, so the description cannot drift from the server
// (package httpnet/apiserver).
package api

import _ "embed"

// OpenAPIJSON is openapi.json: the description as JSON.
//
//go:embed openapi.json
var OpenAPIJSON []byte

// OpenAPIYAML is openapi.yaml, the source of OpenAPIJSON.
//
//go:embed openapi.yaml
var OpenAPIYAML []byte
