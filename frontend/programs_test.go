package frontend

import "testing"

func TestProvides(t *testing.T) {
	programs := []string{"/bin/hello", "/usr/local/bin/jq"}
	cases := []struct {
		prog string
		want bool
	}{
		{"hello", true},
		{"jq", true},
		{"/bin/hello", true},
		{"/bin//hello", true},
		{"/bin/sh", false},
		{"curl", false},
		{"/usr/local/bin/hello", false},
		{"/nix/store/0c5w3dzs5lvhpnqjkqd4w8pkjcg0x0yc-x/bin/x", true},
		{"./run.sh", true},
	}
	for _, c := range cases {
		if got := provides(programs, c.prog); got != c.want {
			t.Errorf("provides(%q) = %v, want %v", c.prog, got, c.want)
		}
	}
}
