package main

import (
	"strings"
	"testing"
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
