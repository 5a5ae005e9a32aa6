package nixlog

import (
	"bytes"
	"os"
	"slices"
	"strings"
	"testing"
)

const (
	drvHello = "/nix/store/3wwbhvl5khb6pwd21kc2caa8j381vhxp-hello-2.12.1.drv"
	drvBad   = "/nix/store/l8ifmjdqrv4adm13aaiymdkfrcsimwiz-bad.drv"
)

func decodeString(t *testing.T, in string) (string, Summary) {
	t.Helper()
	var out bytes.Buffer
	d := NewDecoder(&out)
	if _, err := d.Write([]byte(in)); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	return out.String(), d.Summary()
}

func TestDecodeLines(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{
			name: "plain lines pass through",
			in:   "warning: Git tree '/src' is dirty\ncopying 1 paths...\n",
			want: "warning: Git tree '/src' is dirty\ncopying 1 paths...\n",
		},
		{
			name: "malformed @nix line passes through",
			in:   "@nix {not json\n",
			want: "@nix {not json\n",
		},
		{
			name: "build start, log lines, phase",
			in: `@nix {"action":"start","fields":["` + drvHello + `","",1,1],"id":1,"level":3,"parent":0,"text":"building '` + drvHello + `'","type":105}
@nix {"action":"result","fields":["unpackPhase"],"id":1,"type":104}
@nix {"action":"result","fields":["unpacking source archive"],"id":1,"type":101}
@nix {"action":"result","fields":["\u001b[32mok\u001b[0m"],"id":1,"type":101}
@nix {"action":"result","fields":["signing"],"id":1,"type":107}
@nix {"action":"stop","id":1}
`,
			want: "nix: building hello-2.12.1\nhello: phase unpackPhase\nhello> unpacking source archive\nhello> ok\nhello (post)> signing\n",
		},
		{
			name: "substitution hides its copy and transfer",
			in: `@nix {"action":"start","fields":["/nix/store/0algx0219hm8jyg8hjxqilklbfgldkah-zlib-1.3","https://cache.nixos.org"],"id":7,"level":0,"parent":0,"text":"","type":108}
@nix {"action":"start","fields":["/nix/store/0algx0219hm8jyg8hjxqilklbfgldkah-zlib-1.3","https://cache.nixos.org","local"],"id":8,"level":3,"parent":7,"text":"copying path '/nix/store/0algx0219hm8jyg8hjxqilklbfgldkah-zlib-1.3' from 'https://cache.nixos.org'","type":100}
@nix {"action":"start","fields":["https://cache.nixos.org/nar/abc.nar.xz"],"id":9,"level":4,"parent":8,"text":"downloading 'https://cache.nixos.org/nar/abc.nar.xz'","type":101}
@nix {"action":"stop","id":9}
@nix {"action":"stop","id":8}
@nix {"action":"stop","id":7}
`,
			want: "nix: substituting /nix/store/0algx0219hm8jyg8hjxqilklbfgldkah-zlib-1.3\n",
		},
		{
			name: "downloads outside a substitution are shown",
			in:   `@nix {"action":"start","fields":["https://github.com/o/r/archive/x.tar.gz"],"id":3,"level":3,"parent":0,"text":"downloading 'https://github.com/o/r/archive/x.tar.gz'","type":101}` + "\n",
			want: "downloading 'https://github.com/o/r/archive/x.tar.gz'\n",
		},
		{
			name: "quiet activities are hidden",
			in: `@nix {"action":"start","id":1,"level":0,"text":"","type":102}
@nix {"action":"start","id":2,"level":6,"text":"querying info about missing paths","type":0}
@nix {"action":"start","fields":["/nix/store/x-y","https://c"],"id":3,"level":4,"text":"querying info about '/nix/store/x-y' on 'https://c'","type":109}
@nix {"action":"result","fields":[0,1,0,0],"id":1,"type":105}
@nix {"action":"result","fields":[101,0],"id":1,"type":106}
`,
			want: "",
		},
		{
			name: "messages by level, colours removed",
			in: `@nix {"action":"msg","level":1,"msg":"\u001b[35;1mwarning:\u001b[0m unknown setting 'foo'"}
@nix {"action":"msg","level":3,"msg":"these 2 derivations will be built:"}
@nix {"action":"msg","level":5,"msg":"chatty detail"}
`,
			want: "warning: unknown setting 'foo'\nthese 2 derivations will be built:\n",
		},
		{
			name: "log line of an unknown activity",
			in:   `@nix {"action":"result","fields":["orphan"],"id":42,"type":101}` + "\n",
			want: "unnamed> orphan\n",
		},
		{
			name: "CRLF and missing final newline",
			in:   "a\r\n" + `@nix {"action":"msg","level":0,"msg":"error: x"}`,
			want: "a\nerror: x\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := decodeString(t, tt.in)
			if got != tt.want {
				t.Errorf("output:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestFailureMessages(t *testing.T) {
	tests := []struct {
		name       string
		msg        string
		failed     []string
		depsFailed []string
	}{
		{
			name:   "nix 2.8 builder failure",
			msg:    `\u001b[31;1merror:\u001b[0m builder for '\u001b[35;1m` + drvBad + `\u001b[0m' failed with exit code 1`,
			failed: []string{drvBad},
		},
		{
			name:   "signal",
			msg:    `error: builder for '` + drvBad + `' failed due to signal 9 (Killed)`,
			failed: []string{drvBad},
		},
		{
			name: "nix 2.8 dependency failure",
			msg:  `\u001b[31;1merror:\u001b[0m \u001b[35;1m\u001b[0m\u001b[35;1m1\u001b[0m dependencies of derivation '\u001b[35;1m` + drvHello + `\u001b[0m' failed to build\u001b[0m`,
		},
		{
			name:   "newer nix builder failure",
			msg:    `\u001b[31;1merror:\u001b[0m Cannot build '\u001b[35;1m` + drvBad + `\u001b[0m'.\n       Reason: \u001b[31;1mbuilder failed with exit code 2\u001b[0m.\n       Output paths:\n         /nix/store/aaaa-bad`,
			failed: []string{drvBad},
		},
		{
			name: "newer nix dependency failure",
			msg:  `error: Cannot build '` + drvHello + `'.\n       Reason: 1 dependency failed.`,
		},
		{
			name:   "platform mismatch",
			msg:    `error: a 'aarch64-linux' with features {} is required to build '` + drvBad + `', but I am a 'x86_64-linux' with features {benchmark, big-parallel}`,
			failed: []string{drvBad},
		},
		{
			name: "evaluation error is not a build failure",
			msg:  `error: attribute 'nope' missing`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, sum := decodeString(t, `@nix {"action":"msg","level":0,"msg":"`+tt.msg+`"}`+"\n")
			if strings.Contains(out, "\x1b") {
				t.Errorf("escape sequence left in %q", out)
			}
			if !slices.Equal(sum.Failed, tt.failed) {
				t.Errorf("Failed = %q, want %q", sum.Failed, tt.failed)
			}
			if len(sum.Errors) != 1 || !strings.HasPrefix(sum.Errors[0], "error:") {
				t.Errorf("Errors = %q", sum.Errors)
			}
		})
	}
}

// A line split across writes, as a pipe may deliver it, is decoded once
// whole.
func TestSplitWrites(t *testing.T) {
	var out bytes.Buffer
	d := NewDecoder(&out)
	for _, part := range []string{
		`@nix {"action":"start","fields":["` + drvBad + `","",1,1],"id":2,"level":3,"text":"","type":105}` + "\n",
		`@nix {"action":"msg","level":0,"msg":"error: builder for '` + drvBad,
		`' failed with exit code 1"}` + "\n",
		`@nix {"action":"stop","id":2}`,
	} {
		if _, err := d.Write([]byte(part)); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	want := "nix: building bad\nerror: builder for '" + drvBad + "' failed with exit code 1\n"
	if out.String() != want {
		t.Errorf("output:\n%s\nwant:\n%s", out.String(), want)
	}
	if sum := d.Summary(); !slices.Equal(sum.Failed, []string{drvBad}) {
		t.Errorf("Failed = %q", sum.Failed)
	}
}

// The fixture is stderr of Nix 2.8.0 running
//
//	nix build --impure --no-link -L --log-format internal-json -f default.nix hello bad --keep-going
//
// where bad's builder printed two lines and exited 3.
func TestRecordedNix28Log(t *testing.T) {
	data, err := os.ReadFile("testdata/nix-2.8-build-keep-going.log")
	if err != nil {
		t.Fatal(err)
	}
	out, sum := decodeString(t, string(data))
	const bad = "/tmp/exp/nixroot/store/l8ifmjdqrv4adm13aaiymdkfrcsimwiz-bad.drv"
	want := "nix: building bad\nbad> about to fail\nbad> oops\n" +
		"nix: building hello-1.0\nhello> building hi\nhello> line2\n" +
		"error: builder for '" + bad + "' failed with exit code 3\n"
	if out != want {
		t.Errorf("output:\n%s\nwant:\n%s", out, want)
	}
	if len(sum.Builds) != 2 || !slices.Equal(sum.Failed, []string{bad}) {
		t.Errorf("Builds = %q, Failed = %q", sum.Builds, sum.Failed)
	}
}
