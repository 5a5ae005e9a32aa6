package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/platforms"
	"github.com/moby/buildkit/client/llb"
	gateway "github.com/moby/buildkit/frontend/gateway/client"
	"github.com/moby/buildkit/solver/pb"
	"github.com/nix-frontend/nix-frontend/integration/harness"
	"github.com/nix-frontend/nix-frontend/llb/nixstep"
	digest "github.com/opencontainers/go-digest"
)

// soakNix is a package set whose apps share libraries: concurrent builds
// build the shared parts once and wait on each other's store locks.
const soakNix = `{ salt, app, rev ? "1" }:
let
  busyboxes = { x86_64-linux = ./busybox; aarch64-linux = ./busybox-aarch64; };
  bb = builtins.path { path = busyboxes.${builtins.currentSystem}; name = "busybox"; };
  sh = "${bb}/bin/busybox";
  mk = name: script: derivation { inherit name salt; system = builtins.currentSystem; builder = sh; args = [ "sh" "-c" script ]; };
  lib = i: mk "lib-${toString i}" "${sh} mkdir -p $out/lib; ${sh} sleep 0.3; echo lib ${toString i} > $out/lib/lib${toString i}";
  libs = builtins.genList lib 6;
in rec {
  main = mk "app${app}-${rev}" ''
    ${sh} mkdir -p $out/bin
    ${sh} sleep 0.5
    ${sh} printf '#!${sh} sh\n${sh} cat ${builtins.elemAt libs (builtins.fromJSON app)}/lib/* ${builtins.elemAt libs 5}/lib/*\necho app ${app} rev ${rev}\n' > $out/bin/app
    ${sh} chmod 555 $out/bin/app
  '';
}
`

// soakPhases are the points a soak build may be cancelled at.
var soakPhases = []struct{ name, prefix string }{
	{"evaluation", "[nix stage-0] evaluate"},
	{"build", "[nix 1/1] build"},
	{"layer", "[nix] layer"},
	{"push", "exporting to image"},
}

// TestSoak builds eight Nixfiles that share dependencies and a two-platform
// image at once, round after round, cancels some builds at random points,
// and empties the /nix cache mounts between some rounds. Afterwards every
// build that was not cancelled must have succeeded and run, builds of the
// same inputs must have given the same digest, the shared store must verify
// clean, and no log may show SQLite contention. NF_SOAK_ROUNDS sets the
// rounds (hack/soak runs 20; the default keeps CI short).
func TestSoak(t *testing.T) {
	env := harness.Require(t)
	rounds := 3
	if v, err := strconv.Atoi(os.Getenv("NF_SOAK_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	dir := env.Context(t, map[string]string{
		"Nixfile":     "FROM scratch\nARG SALT\nARG APP\nARG REV=1\nINSTALL --file=default.nix --argstr salt=${SALT} --argstr app=${APP} --argstr rev=${REV} main\nENTRYPOINT [\"app\"]\n",
		"default.nix": soakNix,
	})
	env.AddBusybox(t, dir)
	env.AddBusyboxAarch64(t, dir)
	s := salt(t)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))

	type key struct{ app, rev, platforms string }
	digests := map[key]digest.Digest{}
	var stats struct {
		builds, cancels, prunes, failures int
	}
	start := time.Now()
	for round := 0; round < rounds; round++ {
		if round > 0 && round%4 == 2 {
			env.Prune(t, "type==exec.cachemount")
			stats.prunes++
		}
		type job struct {
			k      key
			cancel string // the phase at which to cancel, "" for none
			res    *harness.Result
			err    error
		}
		var jobs []*job
		for app := 0; app < 8; app++ {
			// A third of the apps get a new revision each round.
			rev := "1"
			if app%3 == 0 {
				rev = strconv.Itoa(round)
			}
			j := &job{k: key{strconv.Itoa(app % 5), rev, "linux/amd64"}}
			if rng.IntN(4) == 0 {
				j.cancel = soakPhases[rng.IntN(len(soakPhases))].prefix
			}
			jobs = append(jobs, j)
		}
		jobs = append(jobs, &job{k: key{"5", "1", "linux/amd64,linux/arm64"}})
		var wg sync.WaitGroup
		for _, j := range jobs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				o := harness.BuildOpts{BuildArgs: map[string]string{"SALT": s, "APP": j.k.app, "REV": j.k.rev,
					"NIX_CONFIG": harness.OfflineNixConfig + "\nextra-platforms = aarch64-linux"}}
				if j.k.platforms != "linux/amd64" {
					o.Platforms = strings.Split(j.k.platforms, ",")
				}
				if j.cancel != "" {
					o.CancelWhen = func(step string) bool { return strings.HasPrefix(step, j.cancel) }
				}
				j.res, j.err = env.TryBuild(t, harness.InProcess, dir, o)
			}()
		}
		wg.Wait()
		for _, j := range jobs {
			stats.builds++
			if strings.Contains(j.res.Log, "database is locked") || strings.Contains(j.res.Log, "SQLITE_BUSY") {
				t.Errorf("round %d, app %s: SQLite contention in the log", round, j.k.app)
			}
			if j.err != nil {
				if j.cancel != "" && (strings.Contains(j.err.Error(), "canceled") || strings.Contains(j.err.Error(), context.Canceled.Error())) {
					stats.cancels++
					continue
				}
				stats.failures++
				t.Errorf("round %d, app %s rev %s (%s, cancel at %q): %v\n%s", round, j.k.app, j.k.rev, j.k.platforms, j.cancel, j.err, j.res.Log)
				continue
			}
			if j.cancel != "" {
				// The build finished before the phase it was to be
				// cancelled at was reached (a cached step never starts).
				t.Logf("round %d, app %s: finished before %q", round, j.k.app, j.cancel)
			}
			if prev, ok := digests[j.k]; ok && prev != j.res.Digest {
				t.Errorf("round %d, app %s rev %s (%s): digest %s, earlier %s", round, j.k.app, j.k.rev, j.k.platforms, j.res.Digest, prev)
			}
			digests[j.k] = j.res.Digest
			if j.k.platforms == "linux/amd64" {
				want := fmt.Sprintf("lib %s\nlib 5\napp %s rev %s\n", j.k.app, j.k.app, j.k.rev)
				if out := env.Run(t, j.res.Ref, harness.RunOpts{}); out != want {
					t.Errorf("round %d, app %s: image printed %q, want %q", round, j.k.app, out, want)
				}
			}
		}
	}
	verifyStore(t, env)
	t.Logf("soak: %d rounds, %d builds, %d cancelled, %d prunes of the /nix cache mounts, %d failures, %s",
		rounds, stats.builds, stats.cancels, stats.prunes, stats.failures, time.Since(start).Round(time.Second))
}

// verifyStore runs nix-store --verify --check-contents on the /nix cache
// mount the builds shared, mounted as the frontend's steps mount it
// (nixstep's StoreMount: a Dockerfile RUN --mount with the same id would
// get a mount of its own, empty). nix-store exits 1 when a path is missing
// or its contents no longer match the hash the database recorded. A mount
// other than the builds' would be new and empty: an empty store fails. (The
// last round's paths need not all be there: a build BuildKit had cached
// since before the last prune runs no Nix step.)
func verifyStore(t *testing.T, env *harness.Env) {
	t.Helper()
	var logs strings.Builder
	err := env.Solve(t, func(ctx context.Context, c gateway.Client) (*gateway.Result, error) {
		platform := platforms.DefaultSpec()
		if w := c.BuildOpts().Workers; len(w) > 0 && len(w[0].Platforms) > 0 {
			platform = w[0].Platforms[0]
		}
		nix, err := nixstep.Resolve(ctx, c, env.NixImage, nixstep.Helper{Ref: env.FrontendImage}, platform, "")
		if err != nil {
			return nil, err
		}
		check := llb.Image(nix.Ref, llb.Platform(platform)).Run(
			llb.Args([]string{"sh", "-c", `[ -n "$(ls -A /nix/store 2>/dev/null)" ] || { echo "the store is empty: not the builds' /nix"; exit 1; }; nix-store --verify --check-contents`}),
			llb.AddEnv("PATH", "/nix/var/nix/profiles/default/bin:/usr/local/bin:/usr/bin:/bin"),
			// A new value instead of llb.IgnoreCache, which would give
			// the step a new, empty cache mount.
			llb.AddEnv("NF_CHECK", strconv.FormatInt(time.Now().UnixNano(), 10)),
			nix.StoreMount(), llb.Network(pb.NetMode_NONE))
		def, err := check.Root().Marshal(ctx)
		if err != nil {
			return nil, err
		}
		return c.Solve(ctx, gateway.SolveRequest{Definition: def.ToPB()})
	}, &logs)
	if err != nil {
		t.Errorf("nix-store --verify --check-contents of the shared store: %v\n%s", err, logs.String())
		return
	}
}
