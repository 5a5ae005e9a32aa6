package protocol

import (
	"strings"
	"testing"

	"github.com/nix-frontend/nix-frontend/nix/evaljobs"
)

const (
	drv  = "/nix/store/0c5w3dzs5lvhpnqjkqd4w8pkjcg0x0yc-hello-2.12.drv"
	out  = "/nix/store/1c5w3dzs5lvhpnqjkqd4w8pkjcg0x0yc-hello-2.12"
	dep  = "/nix/store/2c5w3dzs5lvhpnqjkqd4w8pkjcg0x0yc-glibc-2.40"
	hash = "sha256:180ijh0r4xz12xznga8s2ywig6fxfy4924hjh8nhz2jfz2jn6kk5"
)

func goodJob() evaljobs.Job {
	return evaljobs.Job{Attr: "i0", AttrPath: []string{"i0"}, DrvPath: drv, Name: "hello-2.12", System: "x86_64-linux", Outputs: map[string]string{"out": out}}
}

// Every value an evaluator prints that becomes part of LLB is checked.
func TestEvalResultValidate(t *testing.T) {
	res := func(j evaljobs.Job) *EvalResult {
		return &EvalResult{Installs: []EvalInstall{{Jobs: []evaljobs.Job{j}}}}
	}
	if err := res(goodJob()).Validate(1); err != nil {
		t.Fatalf("a good result: %v", err)
	}
	if err := res(goodJob()).Validate(2); err == nil {
		t.Error("a result for 1 INSTALL line passed as one for 2")
	}
	failed := evaljobs.Job{Attr: "i0", Error: "error: boom"}
	if err := res(failed).Validate(1); err != nil {
		t.Errorf("an evaluation error is a result, not invalid: %v", err)
	}
	for name, mod := range map[string]func(*evaljobs.Job){
		"drvPath outside the store": func(j *evaljobs.Job) { j.DrvPath = "/etc/passwd" },
		"drvPath not a .drv":        func(j *evaljobs.Job) { j.DrvPath = out },
		"system with a newline":     func(j *evaljobs.Job) { j.System = "x86_64-linux\nsandbox = false" },
		"output name with a slash":  func(j *evaljobs.Job) { j.Outputs = map[string]string{"../out": out} },
		"output path below a path":  func(j *evaljobs.Job) { j.Outputs = map[string]string{"out": out + "/bin"} },
		"name with a control char":  func(j *evaljobs.Job) { j.Name = "hello\x1b[2J" },
		"no outputs":                func(j *evaljobs.Job) { j.Outputs = nil },
	} {
		j := goodJob()
		mod(&j)
		if err := res(j).Validate(1); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	bad := res(goodJob())
	bad.FixedOutput = map[string]int{"/tmp/x.drv": 1}
	if err := bad.Validate(1); err == nil {
		t.Error("a fixed-output count for a non-derivation was accepted")
	}
}

func TestBuildResultValidate(t *testing.T) {
	good := BuildResult{DrvPath: drv, Outputs: map[string]string{"out": out}, Closure: []PathInfo{
		{Path: out, NarHash: hash, NarSize: 10, References: []string{dep}},
		{Path: dep, NarHash: hash, NarSize: 20},
	}}
	// Sorted by path: out (1c…) before dep (2c…).
	if err := good.Validate(); err != nil {
		t.Fatalf("a good result: %v", err)
	}
	for name, mod := range map[string]func(*BuildResult){
		"reference outside the closure": func(r *BuildResult) { r.Closure = r.Closure[:1] },
		"output not in the closure":     func(r *BuildResult) { r.Outputs = map[string]string{"out": dep[:len(dep)-1] + "1"} },
		"bad NAR hash":                  func(r *BuildResult) { r.Closure[1].NarHash = "sha256:xyz" },
		"negative size":                 func(r *BuildResult) { r.Closure[1].NarSize = -1 },
		"unsorted":                      func(r *BuildResult) { r.Closure[0], r.Closure[1] = r.Closure[1], r.Closure[0] },
		"path twice":                    func(r *BuildResult) { r.Closure = append(r.Closure, r.Closure[1]) },
		"reference to /etc":             func(r *BuildResult) { r.Closure[1].References = []string{"/etc/shadow"} },
		"deriver not a derivation":      func(r *BuildResult) { r.Closure[1].Deriver = dep },
	} {
		r := good
		r.Closure = append([]PathInfo(nil), good.Closure...)
		mod(&r)
		if err := r.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestDecodeRejectsUnknownFields(t *testing.T) {
	if _, err := Decode[LayerRequest]([]byte(`{"layers":[],"shell":"rm -rf /"}`)); err == nil || !strings.Contains(err.Error(), "layer request") {
		t.Errorf("Decode: %v", err)
	}
	r, err := Decode[LayerRequest]([]byte(`{"layers":[[{"path":"` + out + `","narHash":"` + hash + `","narSize":1}]]}`))
	if err != nil || len(r.Layers) != 1 || r.Validate() != nil {
		t.Errorf("Decode: %+v %v %v", r, err, r.Validate())
	}
}
