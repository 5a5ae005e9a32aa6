package main

import (
	"fmt"
	"math"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/nix-frontend/nix-frontend/integration/harness"
	"golang.org/x/sync/errgroup"
)

// The workloads are generated offline: every derivation's builder is the
// static busybox, and every output is made of pieces of one deterministic
// source file, src.bin, so the same derivation always has the same bytes.

// srcKiB is the size of src.bin: blocks of pseudo-random bytes
// (incompressible, like machine code) and of generated text (compressible,
// like scripts and documentation), in equal numbers of 64 KiB blocks, so
// outputs compress roughly as real packages do.
const srcKiB = 8192

// pkg is one generated store path of W1/W2.
type pkg struct {
	Name string
	KiB  int
}

// w1Packages is W1's closure without its two paths that change: app (the
// root, which refers to every other path) and leaf (the small path the
// leaf-change measurement edits). 5 large paths (25–50 MiB), 25 medium
// ones (12 MiB down to 0.5 MiB) and 168 small ones (400 KiB down to 1 KiB),
// about 295 MiB in all: the shape of a typical application closure, a few
// big runtimes and libraries and a long tail of small ones.
func w1Packages(scale float64) []pkg {
	var out []pkg
	for i, mib := range []int{50, 45, 40, 30, 25} {
		out = append(out, pkg{fmt.Sprintf("big-%d", i), int(float64(mib*1024) * scale)})
	}
	geometric := func(prefix string, n int, from, to float64) {
		for i := 0; i < n; i++ {
			kib := from * math.Pow(to/from, float64(i)/float64(n-1))
			out = append(out, pkg{fmt.Sprintf("%s-%d", prefix, i), max(1, int(kib*scale))})
		}
	}
	geometric("lib", 25, 12*1024, 512)
	geometric("small", 168, 400, 1)
	return out
}

// leafKiB is the size of the leaf path W1's leaf change edits, and of the
// path only W2's second image has.
const leafKiB = 24

// w4Packages is W4's closure without app and leaf: four big paths of
// bigMiB each, half pseudo-random and half text like every generated path,
// and 100 small ones (256 KiB down to 1 KiB), past the default layer
// budget with app and leaf, so that grouping applies as in W1.
func w4Packages(bigMiB int) []pkg {
	var out []pkg
	for i := 0; i < 4; i++ {
		out = append(out, pkg{fmt.Sprintf("big-%d", i), bigMiB * 1024})
	}
	for i := 0; i < 100; i++ {
		kib := 256 * math.Pow(1.0/256, float64(i)/99)
		out = append(out, pkg{fmt.Sprintf("small-%d", i), max(1, int(kib))})
	}
	return out
}

// closestTo returns the package whose size is closest to kib.
func closestTo(pkgs []pkg, kib int) pkg {
	best := pkgs[0]
	for _, p := range pkgs {
		if abs(p.KiB-kib) < abs(best.KiB-kib) {
			best = p
		}
	}
	return best
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// churnNames picks the packages W5 changes: n of pkgs, pseudo-randomly
// but the same in every run, always including first (the 1 MiB path the
// earlier measurement changed, so that W5 starts from its image).
func churnNames(pkgs []pkg, first string, n int) []string {
	out := []string{first}
	rng := rand.New(rand.NewSource(5))
	for _, i := range rng.Perm(len(pkgs)) {
		if len(out) == n {
			break
		}
		if pkgs[i].Name != first {
			out = append(out, pkgs[i].Name)
		}
	}
	return sortStrings(out)
}

// w6Shape is W6's: images, each a closure of pick paths drawn from a
// universe of paths, so that images share some paths and not others,
// built with a layer budget (0: nix-frontend's default, 100) their
// closures exceed, so that grouping applies.
type w6Shape struct {
	images, universe, pick, budget int
}

// w6Packages is W6's universe: a fiftieth large paths (30 down to 10 MiB),
// 15% medium (4 MiB down to 256 KiB), the rest small (256 KiB down to
// 1 KiB); for 400 paths, 8, 60 and 332.
func w6Packages(n int, scale float64) []pkg {
	var out []pkg
	geometric := func(prefix string, n int, from, to float64) {
		for i := 0; i < n; i++ {
			kib := from * math.Pow(to/from, float64(i)/float64(max(n-1, 1)))
			out = append(out, pkg{fmt.Sprintf("%s-%d", prefix, i), max(1, int(kib*scale))})
		}
	}
	large, medium := n/50, n*15/100
	geometric("u-large", large, 30*1024, 10*1024)
	geometric("u-medium", medium, 4096, 256)
	geometric("u-small", n-large-medium, 256, 1)
	return out
}

// draws are the universe's indices each W6 image holds, sorted: the same
// in every run.
func (w w6Shape) draws() [][]int {
	rng := rand.New(rand.NewSource(6))
	out := make([][]int, w.images)
	for i := range out {
		out[i] = append([]int(nil), rng.Perm(w.universe)[:w.pick]...)
		sort.Ints(out[i])
	}
	return out
}

// writeSource writes src.bin: deterministic, the same in every run.
func writeSource(path string) error {
	rng := rand.New(rand.NewSource(20260101))
	words := strings.Fields(`the of and to in is that for it as with was on be by this are or
		from at an but not have which one all were when we there can more if out so about what
		func return error nil string int struct import package const var type range make len
		static void char include define ifdef endif unsigned size_t malloc free printf memcpy
		lib bin share doc man etc usr local opt nix store path build install config option value`)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	block := make([]byte, 64*1024)
	for b := 0; b < srcKiB/64; b++ {
		if b%2 == 0 {
			rng.Read(block)
		} else {
			var sb strings.Builder
			for sb.Len() < len(block) {
				n := 3 + rng.Intn(10)
				for i := 0; i < n; i++ {
					sb.WriteString(words[rng.Intn(len(words))])
					sb.WriteByte(' ')
				}
				fmt.Fprintf(&sb, "%d\n", rng.Intn(100000))
			}
			copy(block, sb.String())
		}
		if _, err := f.Write(block); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

// nixPrelude is the start of every generated default.nix: busybox, the
// source file and the `gen` shell function that writes an output of a
// given size from pieces of src.bin chosen by a seeded generator.
const nixPrelude = `let
  bb = builtins.path { path = ./busybox; name = "busybox"; };
  sh = "${bb}/bin/busybox";
  mk = name: env: script: derivation ({
    inherit name salt;
    system = builtins.currentSystem;
    builder = sh;
    args = [ "sh" "-c" ("set -e\n" + script) ];
  } // env);
`

func genPrelude() string {
	return `  src = builtins.path { path = ./src.bin; name = "bench-src"; };
  # gen NAME SEED KIB writes KIB KiB into $out/lib/NAME-<n>.so files of up
  # to 8 MiB, 256 KiB pieces of src.bin at pseudo-random offsets.
  gen = ''
    gen() {
      name=$1; seed=$2; left=$3; file=0
      ${sh} mkdir -p $out/lib $out/share/doc
      while [ $left -gt 0 ]; do
        f=$out/lib/$name-$file.so
        file=$((file + 1))
        fl=$left
        if [ $fl -gt 8192 ]; then fl=8192; fi
        left=$((left - fl))
        while [ $fl -gt 0 ]; do
          n=$fl
          if [ $n -gt 256 ]; then n=256; fi
          seed=$(( (seed * 1103515245 + 12345) % 2147483648 ))
          ${sh} dd if=${src} bs=1024 skip=$((seed % ` + fmt.Sprint(srcKiB-256) + `)) count=$n 2>/dev/null >> $f
          fl=$((fl - n))
        done
      done
      echo "$name, generated by nix-frontend's benchmark" > $out/share/doc/README
    }
  '';
`
}

// writeW1Context writes the context of W1 and W2 (and of W4, with other
// packages): default.nix with attributes top (W1: app, leaf and the shared
// packages) and top2 (W2: app2, extra2 and the same shared packages), the
// Nixfiles and the baseline Dockerfile. Its arguments change paths for the
// rebuild measurements: leafRev changes leaf; rev changes the packages
// named in changed (comma-separated), both their derivations and their
// bytes.
func writeW1Context(env *harness.Env, t *benchTB, dir, baseline string, pkgs []pkg) {
	var list strings.Builder
	for _, p := range pkgs {
		fmt.Fprintf(&list, "    { name = %q; kib = %d; }\n", p.Name, p.KiB)
	}
	nix := `# Generated by bench/run. W1 is top, W2 is top2; they share every path
# of pkgs.
{ salt, leafRev ? "1", rev ? "1", changed ? "none" }:
` + nixPrelude + genPrelude() + `  changedNames = builtins.filter builtins.isString (builtins.split "," changed);
  pkg = i: p: if builtins.elem p.name changedNames
    then mk p.name { inherit rev; } (gen + "gen ${p.name} ${toString (i * 7919 + 17 + 104729 * builtins.fromJSON rev)} ${toString p.kib}")
    else mk p.name { } (gen + "gen ${p.name} ${toString (i * 7919 + 17)} ${toString p.kib}");
  pkgs = builtins.genList (i: pkg i (builtins.elemAt specs i)) (builtins.length specs);
  specs = [
` + list.String() + `  ];
  leaf = mk "leaf" { inherit leafRev; } (gen + "gen leaf 4242 ` + fmt.Sprint(leafKiB) + `\necho \"leaf revision ${leafRev}\" >> $out/share/doc/README");
  extra2 = mk "extra2" { } (gen + "gen extra2 4343 ` + fmt.Sprint(leafKiB) + `");
  root = name: deps: mk name { } ''
    ${sh} mkdir -p $out/share
    echo ${toString deps} | ${sh} tr ' ' '\n' > $out/share/closure
  '';
in {
  top = root "app" (pkgs ++ [ leaf ]);
  top2 = root "app2" (pkgs ++ [ extra2 ]);
}
`
	files := map[string]string{
		"default.nix": nix,
		"w1.Nixfile": "FROM scratch\nARG SALT\nARG LEAF=1\nARG REV=1\nARG CHANGED=none\n" +
			"INSTALL --file=default.nix --argstr salt=${SALT} --argstr leafRev=${LEAF} --argstr rev=${REV} --argstr changed=${CHANGED} top\n",
		"w2.Nixfile":          "FROM scratch\nARG SALT\nINSTALL --file=default.nix --argstr salt=${SALT} top2\n",
		"baseline.Dockerfile": baseline,
	}
	writeContext(env, t, dir, files)
	must(writeSource(filepath.Join(dir, "src.bin")), "writing src.bin")
}

// w1Args are the build arguments of a W1 (or W4) build with leaf at
// revision leafRev and the packages in changed at revision rev, for each
// tool.
func w1Args(leafRev, rev int, changed []string) map[tool]map[string]string {
	nfArgs := map[string]string{"LEAF": fmt.Sprint(leafRev)}
	nixArgs := fmt.Sprintf("--argstr leafRev %d", leafRev)
	if len(changed) > 0 {
		nfArgs["REV"], nfArgs["CHANGED"] = fmt.Sprint(rev), strings.Join(changed, ",")
		nixArgs += fmt.Sprintf(" --argstr rev %d --argstr changed %s", rev, strings.Join(changed, ","))
	}
	return map[tool]map[string]string{nf: nfArgs, baseline: {"NIX_ARGS": nixArgs}}
}

// writeW6Context writes W6: the universe of packages and one attribute per
// image, imgN, whose root w6-app-N refers to the image's draw; a Nixfile
// per image (w6-N.Nixfile) and the baseline Dockerfile (ATTRS=imgN).
func writeW6Context(env *harness.Env, t *benchTB, dir, baseline string, pkgs []pkg, draws [][]int) {
	var list strings.Builder
	for _, p := range pkgs {
		fmt.Fprintf(&list, "    { name = %q; kib = %d; }\n", p.Name, p.KiB)
	}
	var imgs strings.Builder
	files := map[string]string{"baseline.Dockerfile": baseline}
	for i, d := range draws {
		fmt.Fprintf(&imgs, "  img%d = root \"w6-app-%d\" (pick [ %s ]);\n", i, i, strings.Trim(fmt.Sprint(d), "[]"))
		files[fmt.Sprintf("w6-%d.Nixfile", i)] = fmt.Sprintf("FROM scratch\nARG SALT\nINSTALL --file=default.nix --argstr salt=${SALT} img%d\n", i)
	}
	files["default.nix"] = `# Generated by bench/run: W6, ` + fmt.Sprint(len(draws)) + ` images drawing from one universe of paths.
{ salt }:
` + nixPrelude + genPrelude() + `  pkg = i: p: mk p.name { } (gen + "gen ${p.name} ${toString (i * 7919 + 17)} ${toString p.kib}");
  universe = builtins.genList (i: pkg i (builtins.elemAt specs i)) (builtins.length specs);
  specs = [
` + list.String() + `  ];
  pick = map (i: builtins.elemAt universe i);
  root = name: deps: mk name { } ''
    ${sh} mkdir -p $out/share
    echo ${toString deps} | ${sh} tr ' ' '\n' > $out/share/closure
  '';
in {
` + imgs.String() + `}
`
	writeContext(env, t, dir, files)
	must(writeSource(filepath.Join(dir, "src.bin")), "writing src.bin")
}

// w3Derivations is how many independent derivations W3 builds.
const w3Derivations = 8

// writeW3Context writes w3Derivations independent derivations that each
// burn about two seconds of CPU in a busybox shell loop of iters iterations.
func writeW3Context(env *harness.Env, t *benchTB, dir, baseline string, iters int) {
	nix := `# Generated by bench/run: W3, eight independent CPU-bound derivations.
{ salt, iters ? "` + fmt.Sprint(iters) + `" }:
` + nixPrelude + `  burn = i: mk "burn${toString i}" { inherit iters; } ''
    n=0
    while [ $n -lt ${iters} ]; do n=$((n + 1)); done
    ${sh} mkdir -p $out/share
    echo "burn ${toString i}: $n iterations" > $out/share/burn${toString i}
  '';
in builtins.listToAttrs (builtins.genList (i: { name = "burn${toString i}"; value = burn i; }) ` + fmt.Sprint(w3Derivations) + `)
`
	files := map[string]string{
		"default.nix":         nix,
		"w3.Nixfile":          "FROM scratch\nARG SALT\nINSTALL --file=default.nix --argstr salt=${SALT} " + strings.Join(w3Attrs(), " ") + "\n",
		"baseline.Dockerfile": baseline,
	}
	writeContext(env, t, dir, files)
}

func w3Attrs() []string {
	var out []string
	for i := range w3Derivations {
		out = append(out, fmt.Sprintf("burn%d", i))
	}
	return out
}

// writeManyContext writes a closure of n tiny paths: n-1 files and a root
// derivation that refers to them all.
func writeManyContext(env *harness.Env, t *benchTB, dir string, n int) {
	nix := `# Generated by bench/run: a closure of ` + fmt.Sprint(n) + ` tiny store paths.
{ salt }:
` + nixPrelude + `  # Source files, not derivations: the closure is as large, without
  # ` + fmt.Sprint(n-1) + ` builds that would say nothing about the frontend. The salt
  # makes them new in every run.
  part = i: builtins.toFile "part-${toString i}" "${salt} ${toString i}\n";
  parts = builtins.genList part ` + fmt.Sprint(n-1) + `;
in {
  top = mk "many" { } ''
    ${sh} mkdir -p $out/share
    echo ${toString parts} | ${sh} tr ' ' '\n' > $out/share/closure
  '';
}
`
	files := map[string]string{
		"default.nix":  nix,
		"many.Nixfile": "FROM scratch\nARG SALT\nINSTALL --file=default.nix --argstr salt=${SALT} top\n",
	}
	writeContext(env, t, dir, files)
}

func writeContext(env *harness.Env, t *benchTB, dir string, files map[string]string) {
	for name, content := range files {
		if strings.HasSuffix(name, ".Nixfile") {
			content = env.WithSyntax(content)
		}
		harness.WriteFile(t, filepath.Join(dir, name), content)
	}
	env.AddBusybox(t, dir)
}

// runBurn runs the W3 derivations' shell loop for n iterations.
func runBurn(busybox string, n int) (*exec.Cmd, error) {
	cmd := exec.Command(busybox, "sh", "-c", fmt.Sprintf("n=0; while [ $n -lt %d ]; do n=$((n + 1)); done", n))
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("busybox loop: %v: %s", err, out)
	}
	return cmd, nil
}

// calibrateBurn returns how many iterations of the W3 shell loop take
// target of CPU time here, and the CPU time one run of that many takes.
func calibrateBurn(busybox string, target time.Duration) (int, time.Duration, error) {
	loop := func(n int) (time.Duration, error) {
		cmd, err := runBurn(busybox, n)
		if err != nil {
			return 0, err
		}
		return cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), nil
	}
	const probe = 300000
	best := time.Duration(math.MaxInt64)
	for i := 0; i < 3; i++ {
		d, err := loop(probe)
		if err != nil {
			return 0, 0, err
		}
		best = min(best, d)
	}
	iters := int(float64(probe) * float64(target) / float64(best))
	d, err := loop(iters)
	return iters, d, err
}

// burnAtOnce is the wall time of n W3 loops of iters iterations started at
// once, outside any build: the floor a build of n such derivations can reach
// on this machine, whose cores may not run n/cores loops in the time one
// core runs one (shared hyperthreads, a hypervisor's steal).
func burnAtOnce(busybox string, iters, n int) (time.Duration, error) {
	start := time.Now()
	var g errgroup.Group
	for range n {
		g.Go(func() error {
			_, err := runBurn(busybox, iters)
			return err
		})
	}
	err := g.Wait()
	return time.Since(start), err
}
