// Package client is the Go client of the dtc coordinator's HTTP API (DESIGN §4).
//
//	c, err := client.New("http://127.0.0.1:7070", client.Options{})
//	v, err := c.Submit(ctx, client.Request{
//		ID: "order-1042", // optional; makes the call idempotent and retryable
//		Participants: []client.Participant{
//			{URL: "http://127.0.0.1:9001/prepare", Payload: json.RawMessage(`{"account":"alice","amount":-10}`)},
//			{URL: "http://127.0.0.1:9002/prepare", Payload: json.RawMessage(`{"account":"bob","amount":10}`)},
//		},
//	})
//	// v.State is "committed" or "aborted"; an abort is an outcome, not an error.
//
// A coordinator that authenticates its clients (dtc serve --tokens) takes a bearer
// token, Options.Token, or a client certificate in Options.HTTPClient's TLS
// configuration; without one it answers 401 (CodeUnauthorized), and 403
// (CodeForbidden) to a client whose role does not allow the call.
//
// Errors of the API are *Error values carrying the HTTP status, the API's error code
// (Code* constants) and its message, which names the field at fault; IsNotFound,
// IsConflict and IsInvalid test for the common ones. Transport failures are returned
// as they are (wrapped).
//
// # Retries
//
// A call is retried only where that is safe and the server asked for it: Get and List
// always, Submit and SubmitAsync only with a client-chosen ID (the coordinator answers
// the same id with the same transaction), and only after a 429 or 503 answer that
// carries Retry-After, waiting what it asks (capped by Options.RetryWaitMax), at most
// Options.MaxRetries times, and never past the context. A Submit without an ID is
// never retried: it could begin a second transaction.
package client
