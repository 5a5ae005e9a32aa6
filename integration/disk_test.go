package integration

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/docker/go-units"
	"github.com/nix-frontend/nix-frontend/integration/harness"
)

// diskNix is a 100 MiB closure: four 25 MiB paths, half random bytes (as
// binaries) and half text, a small leaf that changes with rev, and app,
// which refers to all of them.
const diskNix = `{ salt, rev }:
let
  bb = builtins.path { path = ./busybox; name = "busybox"; };
  sh = "${bb}/bin/busybox";
  mk = name: script: derivation {
    inherit name salt;
    system = builtins.currentSystem;
    builder = sh;
    args = [ "sh" "-c" script ];
  };
  big = i: mk "big-${toString i}" ''
    ${sh} mkdir -p $out
    ${sh} head -c 13107200 /dev/urandom > $out/data
    ${sh} yes "text of big-${toString i}, line after line" | ${sh} head -c 13107200 > $out/text
  '';
  bigs = map big [ 0 1 2 3 ];
  leaf = mk "leaf-${rev}" "${sh} mkdir -p $out; echo ${rev} > $out/rev";
in {
  app = mk "app" "${sh} mkdir -p $out; echo ${toString bigs} ${leaf} > $out/refs";
}
`

// diskClosure is diskNix's closure size, near enough: the big paths.
const diskClosure = 4 * 25 << 20

// TestBuilderDisk builds a 100 MiB closure and changes its leaf ten times
// on a daemon of its own. What `buildctl du` counts, but the images it
// pulled and the build context's snapshots (see builderDisk), is the /nix
// cache mount, the evaluations' exports, the layers' snapshots and the
// layers' compressed blobs, which BuildKit keeps for any image it exports. Without the blobs it stays under 2.5 times the closure
// (about twice: the store and the layers), and a change adds little more
// than the changed paths, because it copies only those.
func TestBuilderDisk(t *testing.T) {
	env := harness.Require(t).StartDaemon(t)
	dir := env.Context(t, map[string]string{
		"Nixfile":     "FROM scratch\nARG SALT\nARG REV\nINSTALL --link=none --file=default.nix --argstr salt=${SALT} --argstr rev=${REV} app\n",
		"default.nix": diskNix,
	})
	env.AddBusybox(t, dir)
	args := map[string]string{"SALT": salt(t)}
	blobs := map[string]int64{}
	var du, noBlobs []int64
	var records string
	for rev := 0; rev <= 10; rev++ {
		args["REV"] = strconv.Itoa(rev)
		res := env.Build(t, harness.Buildctl, dir, harness.BuildOpts{BuildArgs: args})
		if rev > 0 {
			if built := harness.Built(res.Log); len(built) != 2 {
				t.Errorf("change %d built %v, want the leaf and app", rev, built)
			}
		}
		for _, l := range env.Inspect(t, res.Ref).Images[0].Manifest.Layers {
			blobs[l.Digest.String()] = l.Size
		}
		var blobBytes int64
		for _, n := range blobs {
			blobBytes += n
		}
		total, recs := builderDisk(t, env)
		du, noBlobs, records = append(du, total), append(noBlobs, total-blobBytes), recs
	}
	mib := func(n int64) string { return units.BytesSize(float64(n)) }
	perChange := (du[10] - du[0]) / 10
	t.Logf("builder disk for a %s closure: %s after the cold build (%s without the compressed layers), "+
		"%s after ten leaf changes (%s without them), %s per change",
		mib(diskClosure), mib(du[0]), mib(noBlobs[0]), mib(du[10]), mib(noBlobs[10]), mib(perChange))
	t.Logf("records over 1 MiB:\n%s", records)
	if limit := int64(diskClosure * 5 / 2); noBlobs[10] > limit {
		t.Errorf("builder disk without the compressed layers %s after ten leaf changes, over 2.5x the closure (%s)", mib(noBlobs[10]), mib(limit))
	}
	if perChange > 16<<20 {
		t.Errorf("a leaf change adds %s to the builder's disk, over 16 MiB", mib(perChange))
	}
}

// builderDisk is what the daemon's cache holds besides the images it
// pulled (the frontend's and Nix's), which any build of theirs needs, and
// the snapshot of the build context BuildKit takes for every build of any
// Dockerfile. It lists the records over 1 MiB.
func builderDisk(t *testing.T, env *harness.Env) (int64, string) {
	var total int64
	var lines []string
	for _, r := range env.DiskUsage(t) {
		if strings.HasPrefix(r.Description, "pulled from ") || r.Description == "local source for context" {
			continue
		}
		total += r.Size
		if r.Size > 1<<20 {
			lines = append(lines, fmt.Sprintf("%s %s %q", units.BytesSize(float64(r.Size)), r.RecordType, r.Description))
		}
	}
	return total, strings.Join(lines, "\n")
}
