package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nix-frontend/nix-frontend/integration/harness"
)

const twoStageNixfile = `FROM scratch AS base
# The greeting the program prints.
ARG GREETING=hello
INSTALL --file=default.nix --argstr greeting=${GREETING} hello hello
ENTRYPOINT ["hello"]

FROM base AS final
`

// buildxCall runs docker buildx build --call=<call> and returns its output.
func buildxCall(t *testing.T, env *harness.Env, dir, call string, args ...string) (string, error) {
	t.Helper()
	argv := append([]string{"buildx", "build", "--builder", env.Builder, "--call=" + call, "-f", filepath.Join(dir, "Nixfile")}, args...)
	cmd := exec.Command("docker", append(argv, dir)...)
	cmd.Env = os.Environ()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestSubrequests checks docker buildx build --call=outline|targets|check.
func TestSubrequests(t *testing.T) {
	env := harness.Require(t)
	dir := exampleContext(t, env, "")
	harness.WriteFile(t, filepath.Join(dir, "Nixfile"), env.WithSyntax(twoStageNixfile))

	out, err := buildxCall(t, env, dir, "outline")
	if err != nil || !strings.Contains(out, "TARGET: final") || !strings.Contains(out, "GREETING") {
		t.Errorf("outline (%v) lacks the target or the ARG INSTALL uses:\n%s", err, out)
	}
	out, err = buildxCall(t, env, dir, "targets")
	if err != nil || !strings.Contains(out, "base") || !strings.Contains(out, "final (default)") {
		t.Errorf("targets (%v):\n%s", err, out)
	}
	out, err = buildxCall(t, env, dir, "check")
	if !strings.Contains(out, "DuplicateInstallable") || !strings.Contains(out, ">>> INSTALL --file=default.nix") {
		t.Errorf("check (%v) does not report the duplicate installable on its line:\n%s", err, out)
	}
}

// TestWarningsAndTargets checks lint warnings during a build, check=error,
// --target, and named contexts for FROM and for the Nix image.
func TestWarningsAndTargets(t *testing.T) {
	env := harness.Require(t)
	dir := exampleContext(t, env, "")
	harness.WriteFile(t, filepath.Join(dir, "Nixfile"), env.WithSyntax(twoStageNixfile+"RUN [\"hello\"]\n"))

	t.Run("warnings are shown", func(t *testing.T) {
		res := env.Build(t, harness.Buildx, dir, harness.BuildOpts{Target: "base"})
		if !strings.Contains(res.Log, "DuplicateInstallable") {
			t.Errorf("build output shows no DuplicateInstallable warning:\n%s", res.Log)
		}
		if out := env.Run(t, res.Ref, harness.RunOpts{}); !strings.Contains(out, "hello\n") {
			t.Errorf("--target base printed %q", out)
		}
	})
	t.Run("check=error=true fails the build", func(t *testing.T) {
		harness.WriteFile(t, filepath.Join(dir, "Nixfile"), env.WithSyntax("# check=error=true\n"+twoStageNixfile))
		ref := env.NewRef("check-error")
		res, err := env.TryBuild(t, harness.Buildx, dir, harness.BuildOpts{Ref: ref})
		if err == nil || !strings.Contains(res.Log, "DuplicateInstallable") {
			t.Errorf("build with check=error=true and a warning: err=%v\n%s", err, res.Log)
		}
		if env.Exists(ref) {
			t.Errorf("a failed check pushed %s", ref)
		}
	})
	t.Run("unknown program", func(t *testing.T) {
		harness.WriteFile(t, filepath.Join(dir, "Nixfile"), env.WithSyntax(
			"FROM scratch\nINSTALL --file=default.nix hello\nENTRYPOINT [\"helo\"]\n"))
		res := env.Build(t, harness.Buildx, dir, harness.BuildOpts{})
		if !strings.Contains(res.Log, "UnknownProgram") || !strings.Contains(res.Log, "ENTRYPOINT runs helo") || !strings.Contains(res.Log, "/bin/hello") {
			t.Errorf("no UnknownProgram warning naming helo and what the image has:\n%s", res.Log)
		}
		harness.WriteFile(t, filepath.Join(dir, "Nixfile"), env.WithSyntax(
			"FROM scratch\nINSTALL --file=default.nix hello\nENTRYPOINT [\"hello\"]\n"))
		if res := env.Build(t, harness.Buildx, dir, harness.BuildOpts{}); strings.Contains(res.Log, "UnknownProgram") {
			t.Errorf("UnknownProgram warning for a program the image has:\n%s", res.Log)
		}
	})
	t.Run("named contexts", func(t *testing.T) {
		// FROM os takes the named context os; the Nix image comes from the
		// named context nix, whatever NIX_IMAGE says.
		harness.WriteFile(t, filepath.Join(dir, "Nixfile"), env.WithSyntax(
			"FROM os\nINSTALL --file=default.nix hello\nCMD [\"/bin/sh\", \"-c\", \"readlink /usr/local/bin/hello && hello\"]\n"))
		res := env.Build(t, harness.Buildx, dir, harness.BuildOpts{
			BuildArgs: map[string]string{"NIX_IMAGE": env.Registry + "/does-not-exist:1"},
			Args: []string{"--build-context", "os=docker-image://" + env.NixImage,
				"--build-context", "nix=docker-image://" + env.NixImage},
		})
		out := env.Run(t, res.Ref, harness.RunOpts{})
		if !strings.Contains(out, "-hello-1.0/bin/hello\n") || !strings.Contains(out, "Hello from Nix") {
			t.Errorf("image printed %q", out)
		}
	})
}
