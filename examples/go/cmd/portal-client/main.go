// Command portal-client drives Portal transfers from a Go service through the service's own Dapr
// sidecar, with the Dapr Go SDK (github.com/dapr/go-sdk) and nothing written by Portal: the request and
// status types below are written from the API reference (docs/api.md) and its JSON Schemas
// (api/schemas/), as another team would.
//
// The SDK calls daprd over gRPC (InvokeActor); daprd forwards the call to Portal's actor host with an
// empty content type, and the body is JSON either way.
//
//	portal-client start   -request transfer.json [-watch] [-timeout 2m]
//	portal-client status  -id <transferId>
//	portal-client watch   -id <transferId> [-timeout 2m]
//	portal-client cancel  -id <transferId>
//	portal-client restart -id <transferId> [-watch]
//	portal-client forget  -id <transferId>
//
// DAPR_GRPC_PORT (and DAPR_API_TOKEN when the sidecar needs one) select the sidecar. The last status
// is printed as one JSON line on stdout. A failed call prints the Portal error as JSON on stdout
// ({"error":{"code","message","fields"}}) and exits 2; a transfer that ends failed or unverified
// exits 1.
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"regexp"
	"time"
	"unicode/utf8"

	dapr "github.com/dapr/go-sdk/client"
)

// TransferStatus is the part of SchedulerActor.status this client reads (api/schemas/transfer-status.schema.json).
type TransferStatus struct {
	TransferID string  `json:"transferId"`
	State      string  `json:"state"`
	Error      string  `json:"error,omitempty"`
	Total      int     `json:"total"`
	Complete   int     `json:"complete"`
	BytesDone  float64 `json:"bytesDone"`
	FileSize   float64 `json:"fileSize"`
	Verified   bool    `json:"verified"`
}

// PortalError is Portal's error envelope ({"error":{...}}).
type PortalError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Fields  []struct {
		Path    string `json:"path"`
		Message string `json:"message"`
	} `json:"fields,omitempty"`
}

func (e *PortalError) Error() string { return e.Code + ": " + e.Message }

// daprd passes an actor's failed answer on inside its own message: "error from actor service: (<status>) <body>".
var envelopeInMessage = regexp.MustCompile(`\(\d{3}\) (\{"error":.*\})\s*$`)

// asPortalError finds Portal's envelope in an InvokeActor error, or returns nil.
func asPortalError(err error) *PortalError {
	m := envelopeInMessage.FindStringSubmatch(err.Error())
	if m == nil {
		return nil
	}
	var env struct {
		Error PortalError `json:"error"`
	}
	if json.Unmarshal([]byte(m[1]), &env) != nil || env.Error.Code == "" {
		return nil
	}
	return &env.Error
}

// plainID matches the transfer ids that go into the actor URL as they are (PLAIN_ID in runtime/state-keys.ts).
var plainID = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9._-]*$`)

// maxIDBytes is the longest transfer id Portal accepts, in bytes of its UTF-8 (MAX_ACTOR_ID_BYTES in
// common/actor-id-wire.ts): 256 ASCII characters, 85 of three bytes such as "€". A longer one is refused with
// PORTAL_INVALID_ARGUMENT (ids travel on the bus, whose messages and subjects carry no longer one).
const maxIDBytes = 256

// actorID is the wire form of a transfer id, as Portal's hosts route it (encodeActorId in runtime/state-keys.ts): the
// id itself when it is plain (letters, digits, "_", "-", and "." after the first character), else "~" followed by the
// unpadded base64url of its UTF-8 bytes. The SDK puts the id into daprd's path as it is, and daprd decodes the path
// before it routes the call: "a/b", even as "a%2Fb", would reach Portal as two segments ("no actor API route").
func actorID(id string) (string, error) {
	if id == "" {
		return "", errors.New("-id: a transfer id is required")
	}
	if !utf8.ValidString(id) {
		return "", fmt.Errorf("-id %q: a transfer id is UTF-8 text", id)
	}
	if len(id) > maxIDBytes {
		return "", fmt.Errorf("-id: a transfer id is at most %d bytes of UTF-8, this one has %d", maxIDBytes, len(id))
	}
	if plainID.MatchString(id) {
		return id, nil
	}
	return "~" + base64.RawURLEncoding.EncodeToString([]byte(id)), nil
}

type portal struct {
	c dapr.Client
}

func (p portal) call(ctx context.Context, id, method string, body []byte) ([]byte, error) {
	wire, err := actorID(id)
	if err != nil {
		return nil, err
	}
	res, err := p.c.InvokeActor(ctx, &dapr.InvokeActorRequest{
		ActorType: "SchedulerActor",
		ActorID:   wire,
		Method:    method,
		Data:      body,
	})
	if err != nil {
		if pe := asPortalError(err); pe != nil {
			return nil, pe
		}
		return nil, err
	}
	return res.Data, nil
}

func (p portal) status(ctx context.Context, id, method string, body []byte) (TransferStatus, []byte, error) {
	var s TransferStatus
	data, err := p.call(ctx, id, method, body)
	if err != nil {
		return s, nil, err
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return s, nil, fmt.Errorf("%s answered something that is not a TransferStatus: %w", method, err)
	}
	return s, data, nil
}

// watch polls status until the transfer is done or failed (or the timeout passes).
func (p portal) watch(ctx context.Context, id string, timeout time.Duration) (TransferStatus, []byte, error) {
	deadline := time.Now().Add(timeout)
	for {
		s, raw, err := p.status(ctx, id, "status", nil)
		if err != nil {
			return s, nil, err
		}
		fmt.Fprintf(os.Stderr, "%s: %s %d/%d chunks\n", id, s.State, s.Complete, s.Total)
		if s.State == "done" || s.State == "failed" || s.State == "cancelled" {
			return s, raw, nil
		}
		if time.Now().After(deadline) {
			return s, raw, fmt.Errorf("transfer %s still %s after %s", id, s.State, timeout)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: portal-client start|status|watch|cancel|restart|forget [flags]")
		os.Exit(2)
	}
	cmd := os.Args[1]
	fs := flag.NewFlagSet(cmd, flag.ExitOnError)
	id := fs.String("id", "", "transfer id")
	request := fs.String("request", "", "start: a JSON file with the TransferRequest")
	watch := fs.Bool("watch", false, "start/restart: poll status until the transfer ends")
	timeout := fs.Duration("timeout", 2*time.Minute, "how long watch waits")
	_ = fs.Parse(os.Args[2:])

	c, err := dapr.NewClient()
	if err != nil {
		fmt.Fprintln(os.Stderr, "dapr client:", err)
		os.Exit(3)
	}
	defer c.Close()
	p := portal{c}
	ctx := context.Background()

	var s TransferStatus
	var raw []byte
	switch cmd {
	case "start":
		body, rerr := os.ReadFile(*request)
		if rerr != nil {
			fmt.Fprintln(os.Stderr, rerr)
			os.Exit(2)
		}
		var req struct {
			TransferID string `json:"transferId"`
		}
		if rerr := json.Unmarshal(body, &req); rerr != nil {
			fmt.Fprintln(os.Stderr, "request:", rerr)
			os.Exit(2)
		}
		*id = req.TransferID
		s, raw, err = p.status(ctx, *id, "start", body)
	case "status", "watch":
		if cmd == "watch" {
			*watch = true
		}
		s, raw, err = p.status(ctx, *id, "status", nil)
	case "cancel", "restart":
		s, raw, err = p.status(ctx, *id, cmd, nil)
	case "forget":
		_, err = p.call(ctx, *id, "forget", nil)
		raw = []byte(`{"forgotten":true}`)
	default:
		fmt.Fprintln(os.Stderr, "unknown command", cmd)
		os.Exit(2)
	}
	if err == nil && *watch && cmd != "forget" && cmd != "cancel" {
		s, raw, err = p.watch(ctx, *id, *timeout)
	}
	if err != nil {
		var pe *PortalError
		if errors.As(err, &pe) {
			out, _ := json.Marshal(map[string]*PortalError{"error": pe})
			fmt.Println(string(out))
		} else {
			fmt.Fprintln(os.Stderr, err)
		}
		os.Exit(2)
	}
	fmt.Println(string(raw))
	if *watch && (s.State != "done" || !s.Verified) {
		os.Exit(1)
	}
}
