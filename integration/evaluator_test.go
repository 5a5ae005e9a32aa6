package integration

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/nix-frontend/nix-frontend/frontend"
	"github.com/nix-frontend/nix-frontend/integration/harness"
	"github.com/nix-frontend/nix-frontend/nix/protocol"
)

// evaluatorNix exercises what the two evaluators must agree on: arguments
// of both kinds, several outputs, nested attributes, a missing attribute
// and a throw.
const evaluatorNix = `{ greeting, repeat }:
let
  bb = builtins.path { path = ./busybox; name = "busybox"; };
  sh = "${bb}/bin/busybox";
  mk = name: attrs: script: derivation ({ inherit name; system = builtins.currentSystem; builder = sh; args = [ "sh" "-c" script ]; } // attrs);
in {
  greeter = mk "greeter-${toString repeat}" { } "${sh} mkdir -p $out; echo ${greeting} > $out/greeting";
  multi = mk "multi-1" { outputs = [ "out" "doc" "dev" ]; } "${sh} mkdir -p $out $doc $dev; echo doc > $doc/README";
  nested.inner = mk "inner-1" { } "${sh} mkdir -p $out";
  throws = throw "the package set says boom";
}
`

// TestEvaluatorDifferential evaluates the same installables with Nix's
// own evaluator and with nix-eval-jobs, in the image that has both: the
// images must be identical and the errors the same, at the same lines.
func TestEvaluatorDifferential(t *testing.T) {
	env := harness.Require(t)
	cases := []struct {
		name, nixfile string
		flake         bool
		fails         bool
	}{
		{name: "file with arguments", nixfile: "FROM scratch\nINSTALL --file=default.nix --argstr greeting=hi --arg repeat=3 greeter nested.inner\n"},
		{name: "several outputs", nixfile: "FROM scratch\nINSTALL --link=none --file=default.nix --argstr greeting=hi --arg repeat=1 multi^doc,out greeter^*\n"},
		{name: "flake", flake: true, nixfile: "FROM scratch\nINSTALL .#hello .#goodbye\n"},
		{name: "flake for aarch64", flake: true, nixfile: "FROM scratch\nINSTALL --system=aarch64-linux .#hello\n"},
		{name: "unknown attribute", fails: true, nixfile: "FROM scratch\nINSTALL --file=default.nix --argstr greeting=hi --arg repeat=1 greeter\nINSTALL --file=default.nix --argstr greeting=hi --arg repeat=1 nope nested.nope\n"},
		{name: "evaluation error", fails: true, nixfile: "FROM scratch\nINSTALL --file=default.nix --argstr greeting=hi --arg repeat=1 greeter throws\n"},
		{name: "unknown flake output", flake: true, fails: true, nixfile: "FROM scratch\nINSTALL .#hello .#nope\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var dir string
			if c.flake {
				dir = exampleContext(t, env, "flake")
				env.AddBusyboxAarch64(t, dir)
				harness.WriteFile(t, filepath.Join(dir, "Nixfile"), env.WithSyntax(c.nixfile))
			} else {
				dir = env.Context(t, map[string]string{"Nixfile": c.nixfile, "default.nix": evaluatorNix})
				env.AddBusybox(t, dir)
			}
			// A file no derivation reads makes the evaluation context new,
			// so each evaluator runs, on a daemon that evaluated it before.
			harness.WriteFile(t, filepath.Join(dir, "salt.txt"), salt(t))
			type outcome struct{ digest, err, log string }
			results := map[string]outcome{}
			for _, evaluator := range []string{protocol.EvaluatorNix, protocol.EvaluatorNixEvalJobs} {
				res, err := env.TryBuild(t, harness.InProcess, dir, harness.BuildOpts{BuildArgs: map[string]string{
					"NIX_IMAGE": env.EvalJobsNixImage, frontend.ArgNixEvaluator: evaluator}})
				if want := "with " + evaluator + ","; !strings.Contains(res.Log, want) {
					t.Errorf("%s: the evaluation step does not say %q:\n%s", evaluator, want, res.Log)
				}
				if (err != nil) != c.fails {
					t.Fatalf("%s: error %v, want failure %v\n%s", evaluator, err, c.fails, res.Log)
				}
				o := outcome{log: res.Log}
				if err != nil {
					o.err = evaluatorNeutral(err.Error())
				} else {
					o.digest = env.Inspect(t, res.Ref).Digest.String()
				}
				results[evaluator] = o
			}
			nix, jobs := results[protocol.EvaluatorNix], results[protocol.EvaluatorNixEvalJobs]
			if nix.digest != jobs.digest {
				t.Errorf("nix built %s, nix-eval-jobs %s", nix.digest, jobs.digest)
			}
			if nix.err != jobs.err {
				t.Errorf("the errors differ:\nnix:\n%s\nnix-eval-jobs:\n%s", nix.err, jobs.err)
			}
			if c.fails {
				t.Logf("both evaluators: %s", nix.err)
			}
		})
	}
}

// evaluatorNeutral drops what names the evaluator from an error: the
// evaluation step's name and the worker count.
func evaluatorNeutral(s string) string {
	return regexp.MustCompile(`with (nix|nix-eval-jobs), \d+ workers?`).ReplaceAllString(s, "with EVALUATOR")
}
