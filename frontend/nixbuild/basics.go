package nixbuild

import (
	"fmt"
	"os"
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
func (b basics) layer() (st llb.State, ok bool) {
	at := llb.WithCreatedTime(storelayers.Epoch)
	var fa *llb.FileAction
	mkdir := func(p string, m os.FileMode, opts ...llb.MkdirOption) {
		opts = append(opts, llb.WithParents(true), at)
		if fa == nil {
			fa = llb.Mkdir(p, m, opts...)
		} else {
			fa = fa.Mkdir(p, m, opts...)
		}
	}
	if !b.provides("etc/passwd") || !b.provides("etc/group") {
		mkdir("/etc", 0o755)
	}
	if !b.provides("etc/passwd") {
		fa = fa.Mkfile("/etc/passwd", 0o644, b.passwd(), at)
	}
	if !b.provides("etc/group") {
		fa = fa.Mkfile("/etc/group", 0o644, b.groups(), at)
	}
	if !b.provides("tmp") {
		// FileOp's mkdir keeps only the permission bits; a copy's chmod
		// keeps the sticky bit too.
		epoch := storelayers.Epoch
		tmp := llb.Scratch().File(llb.Mkdir("/tmp", 0o777, at), llb.WithCustomName("[nix] /tmp"))
		cp := &llb.CopyInfo{Mode: &llb.ChmodOpt{Mode: 0o1777}, CreatedTime: &epoch}
		if fa == nil {
			fa = llb.Copy(tmp, "/tmp", "/tmp", cp)
		} else {
			fa = fa.Copy(tmp, "/tmp", "/tmp", cp)
		}
	}
	if b.home != "" {
		mkdir(b.home, 0o755, llb.WithUIDGID(b.user.id, b.group.id))
	}
	if b.caBundle != "" && !b.provides("etc/ssl/certs/ca-certificates.crt") {
		mkdir("/etc/ssl/certs", 0o755)
		fa = fa.Symlink(b.caBundle, "/etc/ssl/certs/ca-certificates.crt", at)
	}
	if fa == nil {
		return llb.State{}, false
	}
	return llb.Scratch().File(fa, llb.WithCustomName("[nix] passwd, group, /tmp and CA certificates for FROM scratch")), true
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
