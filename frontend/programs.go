package frontend

import (
	"context"
	"path"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/nix-frontend/nix-frontend/frontend/nixbuild"
	"github.com/nix-frontend/nix-frontend/frontend/nixfile"
)

// checkPrograms warns when a stage's ENTRYPOINT (or CMD, without one) runs
// a program the image cannot have. That is knowable only for FROM scratch
// stages where INSTALL alone adds files: no RUN or COPY, and PATH as
// nix-frontend set it. It runs once per stage, whatever the platforms.
func (cv *converter) checkPrograms(ctx context.Context, s *nixfile.Stage, scratch bool, res *nixbuild.Result) error {
	if !scratch {
		return nil
	}
	var entrypoint, cmd *instructions.Command
	for i, c := range s.Commands {
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
			entrypoint = &s.Commands[i]
		case *instructions.CmdCommand:
			cmd = &s.Commands[i]
		}
	}
	var instr string
	var args []string
	var loc = s.Location
	switch {
	case entrypoint != nil:
		e := (*entrypoint).(*instructions.EntrypointCommand)
		instr, args, loc = "ENTRYPOINT", e.CmdLine, e.Location()
		if !e.PrependShell && len(args) == 0 {
			return nil
		}
		if e.PrependShell {
			args = []string{"/bin/sh"}
		}
	case cmd != nil:
		c := (*cmd).(*instructions.CmdCommand)
		instr, args, loc = "CMD", c.CmdLine, c.Location()
		if c.PrependShell {
			args = []string{"/bin/sh"}
		}
	default:
		return nil
	}
	if len(args) == 0 || provides(res.Programs, args[0]) {
		return nil
	}
	cv.mu.Lock()
	if cv.checked == nil {
		cv.checked = map[int]bool{}
	}
	done := cv.checked[s.Index]
	cv.checked[s.Index] = true
	cv.mu.Unlock()
	if done {
		return nil
	}
	r := nixfile.RuleUnknownProgram
	w := nixfile.Warning{RuleName: r.Name, Description: r.Description, URL: r.URL, Message: r.Format(instr, args[0], res.Programs), Location: loc}
	cfg, err := cv.nf.CheckConfig()
	if err != nil {
		return err
	}
	ws, ferr := nixfile.FilterWarnings([]nixfile.Warning{w}, cfg)
	for _, w := range ws {
		cv.src.Warn(ctx, linter.LintFormatShort(w.RuleName, w.Message, loc[0].Start.Line), warnOpts(w.Location, [][]byte{[]byte(w.Description)}, w.URL))
	}
	return ferr
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
