package steps

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

// Build users: the uids Nix runs builders as, as in a multi-user Nix
// installation. The helper runs as root; a builder running as root beside
// the shared store could change other store paths and Nix's database, and
// read what the step mounted for Nix alone. As a build user it can write
// nothing but its own outputs and temporary directory.
const (
	buildGroup      = "nixbld"
	buildGroupID    = 30000
	buildUsers      = 32
	firstBuildUser  = 30001
	buildUserPrefix = "nixbld"
)

// useBuildUsers makes the Nix processes this step starts build as build
// users, creating the nixbld group and its users in the step's /etc (the
// image's own are used when it has them, as nixos/nix does). Every Nix step
// that can build does this: evaluation (import from derivation), fetch and
// build steps. Nix locks each build user in the shared store
// (/nix/var/nix/userpool), so concurrent steps never share one.
func useBuildUsers() error {
	has, err := hasGroup(buildGroup)
	if err != nil {
		return err
	}
	if !has {
		if err := addBuildUsers(); err != nil {
			return fmt.Errorf("creating Nix's build users in the Nix image: %w", err)
		}
	}
	addNixConfig("build-users-group = " + buildGroup)
	return nil
}

func hasGroup(name string) (bool, error) {
	f, err := os.Open("/etc/group")
	if os.IsNotExist(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if g, _, _ := strings.Cut(sc.Text(), ":"); g == name {
			return true, nil
		}
	}
	return false, sc.Err()
}

func addBuildUsers() error {
	var members []string
	var passwd strings.Builder
	for i := 0; i < buildUsers; i++ {
		name := fmt.Sprintf("%s%d", buildUserPrefix, i+1)
		members = append(members, name)
		fmt.Fprintf(&passwd, "%s:x:%d:%d:Nix build user %d:/var/empty:/bin/false\n", name, firstBuildUser+i, buildGroupID, i+1)
	}
	group := fmt.Sprintf("%s:x:%d:%s\n", buildGroup, buildGroupID, strings.Join(members, ","))
	if err := appendFile("/etc/group", group); err != nil {
		return err
	}
	return appendFile("/etc/passwd", passwd.String())
}

func appendFile(name, s string) error {
	if dt, err := os.ReadFile(name); err == nil && len(dt) > 0 && dt[len(dt)-1] != '\n' {
		s = "\n" + s
	}
	f, err := os.OpenFile(name, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(s); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
