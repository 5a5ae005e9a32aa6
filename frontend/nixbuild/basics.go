package nixbuild

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/buildkit/client/llb"
	"github.com/nix-frontend/nix-frontend/llb/storelayers"
	"github.com/nix-frontend/nix-frontend/nix/protocol"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// The ids a FROM scratch image's users get: a user or group named in USER
// gets NamedID unless it is root or nobody, and numeric ids are taken as
// they are, their entries named NumericName(id).
const (
	NamedID  = 1000
	NobodyID = 65534
)

// NumericName names the passwd and group entries of a numeric USER id.
func NumericName(id int) string { return "user" + strconv.Itoa(id) }

// account is a passwd or group entry.
type account struct {
	name string
	id   int
}

// basics is what a FROM scratch image gets besides its store paths, unless
// its link tree has it: /etc/passwd and /etc/group with root, nobody and
// the stage's USER; that user's home; /tmp; and, when the closure has a CA
// bundle, /etc/ssl/certs/ca-certificates.crt linking to it.
type basics struct {
	user, group account
	home        string
	caBundle    string
	provided    []string // protocol.BasicFiles the link tree has
}

// newBasics reads a USER line's value: name, name:group, uid or uid:gid.
func newBasics(user string, links protocol.LinksResult) basics {
	b := basics{caBundle: links.CABundle, provided: links.Provides}
	name, group, hasGroup := strings.Cut(user, ":")
	switch {
	case name == "" || name == "root" || name == "0":
		b.user = account{"root", 0}
	case name == "nobody" || name == strconv.Itoa(NobodyID):
		b.user = account{"nobody", NobodyID}
	default:
		if id, err := strconv.Atoi(name); err == nil && id > 0 {
			b.user = account{NumericName(id), id}
		} else {
			b.user = account{name, NamedID}
		}
	}
	switch {
	case !hasGroup || group == b.user.name || group == strconv.Itoa(b.user.id):
		b.group = b.user
		if b.user.name == "nobody" {
			b.group.name = "nogroup"
		}
	case group == "root" || group == "0":
		b.group = account{"root", 0}
	case group == "nogroup" || group == "nobody" || group == strconv.Itoa(NobodyID):
		b.group = account{"nogroup", NobodyID}
	default:
		if id, err := strconv.Atoi(group); err == nil && id > 0 {
			b.group = account{NumericName(id), id}
		} else {
			b.group = account{group, NamedID}
		}
	}
	if b.user.id != 0 && b.user.id != NobodyID {
		b.home = "/home/" + b.user.name
	}
	return b
}

func (b basics) provides(f string) bool { return slices.Contains(b.provided, f) }

func (b basics) passwd() []byte {
	s := "root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
	if b.home != "" {
		s += fmt.Sprintf("%s:x:%d:%d::%s:/sbin/nologin\n", b.user.name, b.user.id, b.group.id, b.home)
	}
	return []byte(s)
}

func (b basics) groups() []byte {
	s := "root:x:0:\nnogroup:x:65534:\n"
	if b.group.id != 0 && b.group.id != NobodyID {
		s += fmt.Sprintf("%s:x:%d:\n", b.group.name, b.group.id)
	}
	return []byte(s)
}

// layer is the basics as one layer, byte-identical for the same inputs:
// every entry dated at the epoch, owned by root but the user's home. ok is
// false when the link tree has all of it.
//
// FileOp's mkdir and mkfile date what they create, but a later entry
// created in a directory moves the directory's time to now, and mkdir
// keeps only permission bits. So the files are made in a scratch state and
// copied into the layer: a copy dates each directory after its entries,
// and its chmod keeps /tmp's sticky bit.
func (b basics) layer() (st llb.State, ok bool) {
	var files *llb.FileAction
	do := func(a func(*llb.FileAction) *llb.FileAction, first func() *llb.FileAction) {
		if files == nil {
			files = first()
		} else {
			files = a(files)
		}
	}
	mkdir := func(p string, opts ...llb.MkdirOption) {
		opts = append(opts, llb.WithParents(true))
		do(func(fa *llb.FileAction) *llb.FileAction { return fa.Mkdir(p, 0o755, opts...) },
			func() *llb.FileAction { return llb.Mkdir(p, 0o755, opts...) })
	}
	mkfile := func(p string, data []byte) {
		do(func(fa *llb.FileAction) *llb.FileAction { return fa.Mkfile(p, 0o644, data) },
			func() *llb.FileAction { return llb.Mkfile(p, 0o644, data) })
	}
	if !b.provides("etc/passwd") {
		mkdir("/etc")
		mkfile("/etc/passwd", b.passwd())
	}
	if !b.provides("etc/group") {
		mkdir("/etc")
		mkfile("/etc/group", b.groups())
	}
	if b.home != "" {
		mkdir(b.home, llb.WithUIDGID(b.user.id, b.group.id))
	}
	if b.caBundle != "" && !b.provides("etc/ssl/certs/ca-certificates.crt") {
		mkdir("/etc/ssl/certs")
		do(func(fa *llb.FileAction) *llb.FileAction {
			return fa.Symlink(b.caBundle, "/etc/ssl/certs/ca-certificates.crt")
		}, func() *llb.FileAction { return llb.Symlink(b.caBundle, "/etc/ssl/certs/ca-certificates.crt") })
	}
	epoch := storelayers.Epoch
	var layer *llb.FileAction
	if files != nil {
		src := llb.Scratch().File(files, llb.WithCustomName("[nix] passwd, group and CA certificates"))
		layer = llb.Copy(src, "/", "/", &llb.CopyInfo{CopyDirContentsOnly: true, CreatedTime: &epoch})
	}
	if !b.provides("tmp") {
		tmp := llb.Scratch().File(llb.Mkdir("/tmp", 0o777), llb.WithCustomName("[nix] /tmp"))
		cp := &llb.CopyInfo{Mode: &llb.ChmodOpt{Mode: 0o1777}, CreatedTime: &epoch}
		if layer == nil {
			layer = llb.Copy(tmp, "/tmp", "/tmp", cp)
		} else {
			layer = layer.Copy(tmp, "/tmp", "/tmp", cp)
		}
	}
	if layer == nil {
		return llb.State{}, false
	}
	return llb.Scratch().File(layer, llb.WithCustomName("[nix] passwd, group, /tmp and CA certificates for FROM scratch")), true
}

// env is what the basics add to the image's environment: where TLS
// libraries find the CA bundle.
func (b basics) env() []string {
	if b.caBundle == "" {
		return nil
	}
	const link = "/etc/ssl/certs/ca-certificates.crt"
	return []string{"SSL_CERT_FILE=" + link, "NIX_SSL_CERT_FILE=" + link}
}

// history is the basics layer's image history entry.
func (b basics) history() ocispecs.History {
	return storelayers.History("passwd, group, /tmp and CA certificates for FROM scratch",
		storelayers.ContentID([]string{string(b.passwd()), string(b.groups()), b.home, b.caBundle, strings.Join(b.provided, ",")}))
}
