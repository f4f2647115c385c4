package main

import (
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The wire forms below are what encodeActorId (runtime/state-keys.ts) gives for the same ids.
func TestActorID(t *testing.T) {
	cases := []struct{ id, wire string }{
		{"go-sdk-1", "go-sdk-1"},
		{"a.b", "a.b"},
		{"a/b", "~YS9i"},
		{".hidden", "~LmhpZGRlbg"},
		{"~YS9i", "~fllTOWk"},
		{"<img src=x onerror=alert(1)>", "~PGltZyBzcmM9eCBvbmVycm9yPWFsZXJ0KDEpPg"},
		{"ünï", "~w7xuw68"},
	}
	for _, c := range cases {
		got, err := actorID(c.id)
		if err != nil || got != c.wire {
			t.Errorf("actorID(%q) = %q, %v; want %q", c.id, got, err, c.wire)
		}
	}
	// the limit (256 bytes of UTF-8: 85 "€" and one "x") passes, one byte more does not
	atLimit := strings.Repeat("€", 85) + "x"
	if got, err := actorID(atLimit); err != nil || len(got) != 1+342 {
		t.Errorf("actorID(256 bytes) = %d characters, %v; want the 343 of its wire form", len(got), err)
	}
	if got, err := actorID(strings.Repeat("a", 256)); err != nil || got != strings.Repeat("a", 256) {
		t.Errorf("actorID(256 ASCII) = %q, %v; want it as it is", got, err)
	}
	for _, bad := range []string{"", "\xff", atLimit + "y", strings.Repeat("a", 257)} {
		if got, err := actorID(bad); err == nil {
			t.Errorf("actorID(%q) = %q, want an error", bad, got)
		}
	}
}

// The command line is checked before the sidecar is dialled: -h is usage and exit 0, a wrong command line is the
// reason, the usage and exit 2 (a trial's `portal-client -h`, `bogus` and `status` without -id each waited 5 s for
// Dapr and exited 3 "dapr client: … context deadline exceeded").
func TestParseInvocation(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "req.json")
	if err := os.WriteFile(good, []byte(`{"transferId":"t-1","manifest":{}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	noID := filepath.Join(dir, "noid.json")
	if err := os.WriteFile(noID, []byte(`{"manifest":{}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args []string
		code int
		err  string // in stderr (code 2)
	}{
		{[]string{"-h"}, 0, ""},
		{[]string{"help"}, 0, ""},
		{[]string{"status", "-h"}, 0, ""},
		{[]string{"start", "-help"}, 0, ""},
		{nil, 2, "portal-client: a command is required"},
		{[]string{"bogus"}, 2, `portal-client: unknown command "bogus"`},
		{[]string{"-id", "x"}, 2, `portal-client: unknown command "-id"`},
		{[]string{"status"}, 2, "portal-client: status: -id: a transfer id is required"},
		{[]string{"cancel", "-id", strings.Repeat("a", 257)}, 2, "cancel: -id: a transfer id is at most 256 bytes"},
		{[]string{"status", "-nope"}, 2, "portal-client: status: flag provided but not defined: -nope"},
		{[]string{"watch", "-id", "x", "-timeout", "soon"}, 2, `portal-client: watch: invalid value "soon" for flag -timeout`},
		{[]string{"watch", "-id", "x", "-timeout", "0s"}, 2, "watch: -timeout must be positive, got 0s"},
		{[]string{"status", "-id", "x", "extra"}, 2, `status: unexpected argument "extra"`},
		{[]string{"status", "-id", "x", "-request", good}, 2, "status: -request is for start only"},
		{[]string{"start"}, 2, "start: -request <file> is required"},
		{[]string{"start", "-request", filepath.Join(dir, "missing.json")}, 2, "start: -request: open "},
		{[]string{"start", "-request", noID}, 2, "has no transferId"},
		{[]string{"start", "-request", good, "-id", "t-1"}, 2, "start: the transfer id comes from the request's transferId"},
	}
	for _, c := range cases {
		var stdout, stderr strings.Builder
		_, code := parseInvocation(c.args, &stdout, &stderr)
		if code != c.code {
			t.Errorf("%q: exit %d, want %d (stderr %q)", c.args, code, c.code, stderr.String())
			continue
		}
		if c.code == 0 && (!strings.HasPrefix(stdout.String(), "usage: portal-client <command>") || stderr.Len() != 0) {
			t.Errorf("%q: stdout %q stderr %q, want the usage on stdout only", c.args, stdout.String(), stderr.String())
		}
		if c.code == 2 && (!strings.Contains(stderr.String(), c.err) || !strings.Contains(stderr.String(), "usage: portal-client") || stdout.Len() != 0) {
			t.Errorf("%q: stderr %q, want %q and the usage (stdout %q)", c.args, stderr.String(), c.err, stdout.String())
		}
	}
	for _, c := range []struct {
		args []string
		want invocation
	}{
		{[]string{"status", "-id", "a/b"}, invocation{cmd: "status", id: "a/b", timeout: 2 * time.Minute}},
		{[]string{"watch", "-id", "x", "-timeout", "5s"}, invocation{cmd: "watch", id: "x", watch: true, timeout: 5 * time.Second}},
		{[]string{"restart", "-id", "x", "-watch"}, invocation{cmd: "restart", id: "x", watch: true, timeout: 2 * time.Minute}},
	} {
		got, code := parseInvocation(c.args, io.Discard, io.Discard)
		if code != -1 || got.cmd != c.want.cmd || got.id != c.want.id || got.watch != c.want.watch || got.timeout != c.want.timeout {
			t.Errorf("%q: %+v, %d; want %+v, -1", c.args, got, code, c.want)
		}
	}
	inv, code := parseInvocation([]string{"start", "-request", good, "-watch"}, io.Discard, io.Discard)
	if code != -1 || inv.id != "t-1" || !inv.watch || string(inv.body) != `{"transferId":"t-1","manifest":{}}` {
		t.Errorf("start: %+v, %d", inv, code)
	}
}

// The built command: -h exits 0 and a wrong command line exits 2, with a sidecar port where nothing listens (the
// command line is answered without dialling it: no "dapr client" error); a good command line does dial it, exit 3.
func TestMainExitCodes(t *testing.T) {
	if os.Getenv("PORTAL_CLIENT_RUN_MAIN") == "1" {
		os.Args = append([]string{"portal-client"}, strings.Fields(os.Getenv("PORTAL_CLIENT_ARGS"))...)
		main()
		os.Exit(0)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close() // nothing listens there now: a dial is refused
	for _, c := range []struct {
		args string
		code int
		out  string
	}{
		{"-h", 0, "usage: portal-client"},
		{"bogus", 2, `unknown command "bogus"`},
		{"status", 2, "-id: a transfer id is required"},
		{"status -id x", 3, "dapr client:"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestMainExitCodes$")
		cmd.Env = append(os.Environ(), "PORTAL_CLIENT_RUN_MAIN=1", "PORTAL_CLIENT_ARGS="+c.args,
			"DAPR_GRPC_PORT="+port, "DAPR_CLIENT_TIMEOUT_SECONDS=1")
		out, _ := cmd.CombinedOutput()
		code := cmd.ProcessState.ExitCode()
		if code != c.code || !strings.Contains(string(out), c.out) {
			t.Errorf("portal-client %s: exit %d, output %q; want exit %d and %q", c.args, code, out, c.code, c.out)
		}
		if c.code != 3 && strings.Contains(string(out), "dapr client") {
			t.Errorf("portal-client %s dialled Dapr: %q", c.args, out)
		}
	}
}
