package nixbuild

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/nix-frontend/nix-frontend/frontend/nixfile"
	"github.com/nix-frontend/nix-frontend/llb/nixstep"
	"github.com/nix-frontend/nix-frontend/nix/evaljobs"
	"github.com/nix-frontend/nix-frontend/nix/protocol"
	"github.com/nix-frontend/nix-frontend/nix/storepath"
)

// evaluation is the evaluation step's result and where its output is.
type evaluation struct {
	*protocol.EvalResult
	reqs []evaljobs.Request
	run  nixstep.Run
}

// evaluate runs the stage's evaluation step and reads what it found.
func (p *plan) evaluate(ctx context.Context) (*evaluation, error) {
	reqs, err := p.evalRequests()
	if err != nil {
		return nil, err
	}
	var words []string
	for _, in := range p.stage.Installs {
		words = append(words, installDesc(in))
	}
	runs, err := p.steps(planStep{Step: nixstep.Step{
		Name:       fmt.Sprintf("[nix %s] evaluate %s", p.stage.Name, strings.Join(words, " ")),
		Request:    protocol.EvalRequest{Installs: reqs, Evaluator: p.b.Evaluator},
		Inputs:     []nixstep.Mount{{Target: protocol.SrcDir, State: p.b.Context, Path: "/"}},
		Access:     nixstep.Fetching,
		UserConfig: true,
	}, locs: p.allLocations()})
	if err != nil {
		return nil, err
	}
	ev := &evaluation{EvalResult: &protocol.EvalResult{}, reqs: reqs, run: runs[0]}
	if err := p.readJSON(ctx, runs[0].Out, protocol.EvalFile, ev.EvalResult); err != nil {
		return nil, err
	}
	if err := ev.Validate(len(p.stage.Installs)); err != nil {
		return nil, parser.WithLocation(err, p.allLocations())
	}
	return ev, nil
}

// evalRequests turns INSTALL lines into evaluation requests.
func (p *plan) evalRequests() ([]evaljobs.Request, error) {
	var reqs []evaljobs.Request
	for _, in := range p.stage.Installs {
		// Meta gives the SBOM its licenses and the entrypoint its program.
		r := evaljobs.Request{Impure: in.Impure, System: in.System, Meta: true}
		if r.System == "" {
			r.System = p.stage.System
		}
		if in.File != "" {
			r.File = path.Join(protocol.SrcDir, path.Clean("/"+in.File))
			for _, w := range in.Installables {
				inst, err := evaljobs.FileInstallable(w)
				if err != nil {
					return nil, parser.WithLocation(fmt.Errorf("INSTALL %s: %w", w, err), in.Location)
				}
				r.Installables = append(r.Installables, inst)
			}
			for _, a := range in.Args {
				r.Args = append(r.Args, evaljobs.Arg{Name: a.Name, Value: a.Value, String: a.String})
			}
		} else {
			for _, w := range in.Installables {
				inst, err := evaljobs.ResolveFlakeRef(w, protocol.SrcDir)
				if err != nil {
					return nil, parser.WithLocation(fmt.Errorf("INSTALL %s: %w", w, err), in.Location)
				}
				r.Installables = append(r.Installables, inst)
			}
		}
		reqs = append(reqs, r)
	}
	return reqs, nil
}

// job is one build step: a derivation and the outputs to install.
type job struct {
	key     string // the derivation, selected outputs and network: the step's identity
	name    string
	system  string
	drvPath string
	outputs map[string]string
	network string
	fetch   bool
	// main is the program `nix run` would run, for compatibility mode.
	main string
	locs []parser.Range
	// run is the build step, result what it wrote.
	run    nixstep.Run
	result *protocol.BuildResult
}

// resultFile is where the job's build step writes its result.
func (j *job) resultFile() string { return path.Join(protocol.ResultDir, j.key+".json") }

// linkGroups are the link step's groups and, for each, its INSTALL line.
type linkGroups struct {
	groups []protocol.LinkGroup
	locs   [][]parser.Range
}

// jobs picks the build steps from the evaluation, reporting every
// installable that failed to evaluate at its INSTALL line.
func (p *plan) jobs(ev *evaluation) ([]*job, linkGroups, error) {
	var jobs []*job
	byKey := map[string]*job{}
	var links linkGroups
	var errs []string
	var errLocs []parser.Range
	fail := func(in *nixfile.Install, msg string) {
		errs = append(errs, msg)
		if errLocs == nil {
			errLocs = in.Location
		}
	}
	for i, res := range ev.Installs {
		in := p.stage.Installs[i]
		targets := ev.reqs[i].Targets()
		var paths []string
		for k, j := range res.Jobs {
			word := installDesc(in)
			if k < len(in.Installables) {
				word = in.Installables[k]
			}
			if j.Error != "" {
				fail(in, fmt.Sprintf("INSTALL %s: %s", word, contextNames(evaljobs.TrimNixError(j.Error))))
				continue
			}
			var sel []string
			if k < len(targets) {
				sel = targets[k].Outputs
			}
			outputs, err := selectOutputs(j, sel)
			if err != nil {
				fail(in, fmt.Sprintf("INSTALL %s: %v", word, err))
				continue
			}
			key := storepath.Base(j.DrvPath) + "." + strings.Join(slices.Sorted(maps.Keys(outputs)), ",")
			if in.Network != "" {
				key += ".network-" + in.Network
			}
			jb := byKey[key]
			if jb == nil {
				jb = &job{key: key, name: j.Name, system: j.System, drvPath: j.DrvPath, outputs: outputs,
					network: in.Network, fetch: ev.NeedsFetch(j.DrvPath), main: mainProgram(j)}
				byKey[key] = jb
				jobs = append(jobs, jb)
			}
			jb.locs = append(jb.locs, in.Location...)
			for _, name := range slices.Sorted(maps.Keys(outputs)) {
				paths = append(paths, outputs[name])
			}
		}
		root := in.Link
		switch {
		case root == "none":
			continue
		case root == "" && p.stage.Scratch:
			root = "/"
		case root == "":
			root = "/usr/local"
		}
		links.groups = append(links.groups, protocol.LinkGroup{Root: root, Priority: in.Priority, Paths: paths})
		links.locs = append(links.locs, in.Location)
	}
	if len(errs) > 0 {
		return nil, linkGroups{}, parser.WithLocation(fmt.Errorf("evaluation failed:\n%s", strings.Join(errs, "\n")), errLocs)
	}
	return jobs, links, nil
}

// contextNames names the build context in a message as the user does, not
// by where the steps mount it.
var contextNames = strings.NewReplacer(
	"path:"+protocol.SrcDir+"/", "path:./",
	"path:"+protocol.SrcDir, "path:.",
	protocol.SrcDir+"/", "",
).Replace

// evalError is the error of a failed evaluation: every installable's, at
// the first failing INSTALL line.
func (p *plan) evalError(res *protocol.EvalResult) error {
	if err := res.Validate(len(p.stage.Installs)); err != nil {
		return parser.WithLocation(err, p.allLocations())
	}
	reqs, err := p.evalRequests()
	if err != nil {
		return err
	}
	_, _, err = p.jobs(&evaluation{EvalResult: res, reqs: reqs})
	if err == nil {
		err = parser.WithLocation(fmt.Errorf("evaluation failed"), p.allLocations())
	}
	return err
}

// selectOutputs picks the outputs an installable installs: those after '^'
// ("*" for all), else "out" (or the first output), like `nix profile`.
func selectOutputs(j evaljobs.Job, sel []string) (map[string]string, error) {
	if len(j.Outputs) == 0 {
		return nil, fmt.Errorf("%s has no outputs", j.DrvPath)
	}
	out := map[string]string{}
	switch {
	case len(sel) == 1 && sel[0] == "*":
		maps.Copy(out, j.Outputs)
	case len(sel) > 0:
		for _, name := range sel {
			p, ok := j.Outputs[name]
			if !ok {
				return nil, fmt.Errorf("%s has no output %q (it has %s)", j.Name, name, strings.Join(slices.Sorted(maps.Keys(j.Outputs)), ", "))
			}
			out[name] = p
		}
	default:
		if p, ok := j.Outputs["out"]; ok {
			out["out"] = p
		} else {
			first := slices.Sorted(maps.Keys(j.Outputs))[0]
			out[first] = j.Outputs[first]
		}
	}
	for name, p := range out {
		if p == "" {
			return nil, fmt.Errorf("output %s of %s is content-addressed, which nix-frontend does not support yet", name, j.Name)
		}
	}
	return out, nil
}

// mainProgram is the program `nix run` would run for a package.
func mainProgram(j evaljobs.Job) string {
	var meta struct {
		MainProgram string `json:"mainProgram"`
	}
	if len(j.Meta) > 0 && json.Unmarshal(j.Meta, &meta) == nil && meta.MainProgram != "" && !strings.Contains(meta.MainProgram, "/") {
		return meta.MainProgram
	}
	return storepath.PName(j.Name)
}

func installDesc(in *nixfile.Install) string {
	if len(in.Installables) == 0 {
		return "--file=" + in.File
	}
	return strings.Join(in.Installables, " ")
}
