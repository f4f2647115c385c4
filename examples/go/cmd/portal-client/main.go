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
// exits 1. The command line (command, flags, -request file, -id) is checked before the sidecar is dialled:
// -h prints the usage and exits 0, a wrong one prints why and the usage and exits 2; no sidecar exits 3.
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
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

// usage is the command line, printed for -h (exit 0) and for a wrong one (exit 2).
const usage = `usage: portal-client <command> [flags]

  start   -request transfer.json [-watch] [-timeout 2m]
  status  -id <transferId>
  watch   -id <transferId> [-timeout 2m]
  cancel  -id <transferId>
  restart -id <transferId> [-watch] [-timeout 2m]
  forget  -id <transferId>

DAPR_GRPC_PORT (and DAPR_API_TOKEN) select the Dapr sidecar.`

// invocation is one checked command line: what to run, with which flags (and, for start, the request it sends).
type invocation struct {
	cmd     string
	id      string
	body    []byte // start: the TransferRequest read from -request
	watch   bool
	timeout time.Duration
}

// parseInvocation checks the command, its flags and (for start) the request file before anything dials Dapr, so a
// wrong command line is answered at once rather than after the SDK's dial timeout. It returns the invocation and -1
// to go on, or the exit code to stop with: 0 after -h/-help/help (usage on stdout, as Go's flag package exits 0 for
// -h), 2 for a wrong command line (the reason and the usage on stderr), as flag.ExitOnError does.
func parseInvocation(args []string, stdout, stderr io.Writer) (invocation, int) {
	var inv invocation
	bad := func(format string, a ...any) (invocation, int) {
		fmt.Fprintf(stderr, "portal-client: "+format+"\n%s\n", append(a, usage)...)
		return inv, 2
	}
	if len(args) == 0 {
		return bad("a command is required")
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(stdout, usage)
		return inv, 0
	case "start", "status", "watch", "cancel", "restart", "forget":
	default:
		return bad("unknown command %q", args[0])
	}
	inv.cmd = args[0]
	fs := flag.NewFlagSet("portal-client "+inv.cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // the error is printed below, once, with the usage
	id := fs.String("id", "", "transfer id")
	request := fs.String("request", "", "start: a JSON file with the TransferRequest")
	fs.BoolVar(&inv.watch, "watch", false, "start/restart: poll status until the transfer ends")
	fs.DurationVar(&inv.timeout, "timeout", 2*time.Minute, "how long watch waits")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stdout, usage)
			return inv, 0
		}
		return bad("%s: %v", inv.cmd, err)
	}
	if fs.NArg() > 0 {
		return bad("%s: unexpected argument %q", inv.cmd, fs.Arg(0))
	}
	if inv.timeout <= 0 {
		return bad("%s: -timeout must be positive, got %s", inv.cmd, inv.timeout)
	}
	if inv.cmd == "start" {
		if *id != "" {
			return bad("start: the transfer id comes from the request's transferId, not -id")
		}
		if *request == "" {
			return bad("start: -request <file> is required")
		}
		body, err := os.ReadFile(*request)
		if err != nil {
			return bad("start: -request: %v", err)
		}
		var req struct {
			TransferID string `json:"transferId"`
		}
		if err := json.Unmarshal(body, &req); err != nil {
			return bad("start: -request %s is not a JSON TransferRequest: %v", *request, err)
		}
		if req.TransferID == "" {
			return bad("start: -request %s has no transferId", *request)
		}
		inv.body, inv.id = body, req.TransferID
	} else {
		if *request != "" {
			return bad("%s: -request is for start only", inv.cmd)
		}
		inv.id = *id
	}
	if _, err := actorID(inv.id); err != nil {
		return bad("%s: %v", inv.cmd, err)
	}
	if inv.cmd == "watch" {
		inv.watch = true
	}
	return inv, -1
}

func main() {
	inv, code := parseInvocation(os.Args[1:], os.Stdout, os.Stderr)
	if code >= 0 {
		os.Exit(code)
	}
	// the Dapr SDK's logger says "dapr client initializing for: …" on stdout (its default, client.SetLogger's doc),
	// which carries only the answer's JSON (a script pipes it to jq), and stderr only this client's own errors:
	// the SDK's informational lines are dropped (SetLogger(nil) discards them)
	dapr.SetLogger(nil)
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
	switch inv.cmd {
	case "start":
		s, raw, err = p.status(ctx, inv.id, "start", inv.body)
	case "status", "watch":
		s, raw, err = p.status(ctx, inv.id, "status", nil)
	case "cancel", "restart":
		s, raw, err = p.status(ctx, inv.id, inv.cmd, nil)
	case "forget":
		_, err = p.call(ctx, inv.id, "forget", nil)
		raw = []byte(`{"forgotten":true}`)
	}
	if err == nil && inv.watch && inv.cmd != "forget" && inv.cmd != "cancel" {
		s, raw, err = p.watch(ctx, inv.id, inv.timeout)
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
	if inv.watch && (s.State != "done" || !s.Verified) {
		os.Exit(1)
	}
}
