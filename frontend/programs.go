package frontend

import (
	"path"
	"strconv"
	"strings"

	"github.com/containerd/platforms"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/nix-frontend/nix-frontend/frontend/nixfile"
)

// checkPrograms warns when a stage's ENTRYPOINT (or CMD, without one)
// runs a program the image cannot have. That is knowable only for FROM
// scratch stages where INSTALL alone adds files: no RUN or COPY, and PATH as
// nix-frontend set it.
func checkPrograms(s *nixfile.Stage, scratch bool, programs []string) []nixfile.Warning {
	if !scratch {
		return nil
	}
	var entrypoint *instructions.EntrypointCommand
	var cmd *instructions.CmdCommand
	for _, c := range s.Commands {
		switch c := c.(type) {
		case *instructions.RunCommand, *instructions.CopyCommand:
			return nil
		case *instructions.EnvCommand:
			for _, kv := range c.Env {
				if kv.Key == "PATH" {
					return nil
				}
			}
		case *instructions.EntrypointCommand:
			entrypoint = c
		case *instructions.CmdCommand:
			cmd = c
		}
	}
	var instr string
	var args []string
	var loc []parser.Range
	switch {
	case entrypoint != nil:
		instr, args, loc = "ENTRYPOINT", entrypoint.CmdLine, entrypoint.Location()
		if entrypoint.PrependShell {
			args = []string{"/bin/sh"}
		}
	case cmd != nil:
		instr, args, loc = "CMD", cmd.CmdLine, cmd.Location()
		if cmd.PrependShell {
			args = []string{"/bin/sh"}
		}
	}
	if len(args) == 0 || provides(programs, args[0]) {
		return nil
	}
	r := nixfile.RuleUnknownProgram
	return []nixfile.Warning{{RuleName: r.Name, Description: r.Description, URL: r.URL, Message: r.Format(instr, args[0], programs), Location: loc}}
}

// provides says whether a program named as in a CMD is among the image's
// programs: an absolute path, or a name found in a bin directory on PATH.
// Store paths and relative paths are not checked.
func provides(programs []string, prog string) bool {
	switch {
	case strings.HasPrefix(prog, "/nix/store/"):
		return true
	case strings.HasPrefix(prog, "/"):
		for _, p := range programs {
			if p == path.Clean(prog) {
				return true
			}
		}
		return false
	case strings.Contains(prog, "/"):
		return true
	}
	for _, p := range programs {
		if path.Base(p) == prog {
			return true
		}
	}
	return false
}

// stageUser is the value of a stage's last USER line, expanded; "" when it
// has none.
func stageUser(s *nixfile.Stage, scope scopes) string {
	user := ""
	for i, c := range s.Commands {
		if u, ok := c.(*instructions.UserCommand); ok {
			user = scope.expand(u.User, scope.stage(s, i))
		}
	}
	return user
}

// userWarnings warns about FROM scratch stages with INSTALL lines whose
// USER names a user when nix-frontend adds no /etc/passwd: nothing defines
// it, and programs that look the current user up fail.
func (cv *converter) userWarnings() []nixfile.Warning {
	if cv.cfg.basics {
		return nil
	}
	var out []nixfile.Warning
	scope := cv.scopes(platforms.DefaultSpec())
	for _, s := range cv.nf.Stages {
		if len(s.Installs) == 0 || !strings.EqualFold(scope.expand(s.BaseName, scope.meta), "scratch") {
			continue
		}
		for i, c := range s.Commands {
			u, ok := c.(*instructions.UserCommand)
			if !ok {
				continue
			}
			name, _, _ := strings.Cut(scope.expand(u.User, scope.stage(s, i)), ":")
			if _, err := strconv.Atoi(name); err == nil || name == "root" || name == "" {
				continue
			}
			r := nixfile.RuleUnknownUser
			out = append(out, nixfile.Warning{RuleName: r.Name, Description: r.Description, URL: r.URL, Message: r.Format(u.User), Location: u.Location()})
		}
	}
	return out
}
