// Package api is the agent's HTTP API (chi): GET /healthz without
// authentication, and under /v1 the JSON resources controllers and operators
// drive — inventory, plan, provision (start and status), events (Server-Sent
// Events), reboot, poweroff, logs — each behind a bearer token compared in
// constant time. The API is described by the OpenAPI document served at
// /v1/openapi.yaml (openapi.yaml, embedded; a test checks every route is in
// it).
//
// The package owns HTTP only. What the routes act on comes in through
// consumer-declared interfaces in Deps (the agent package implements them;
// tests use fakes), so NewRouter can be exercised with httptest alone.
package api
