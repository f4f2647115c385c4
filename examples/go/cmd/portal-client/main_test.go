package main

import "testing"

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
	for _, bad := range []string{"", "\xff"} {
		if got, err := actorID(bad); err == nil {
			t.Errorf("actorID(%q) = %q, want an error", bad, got)
		}
	}
}
