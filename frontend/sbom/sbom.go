// Package sbom writes the software bill of materials of a Nix-built image
// from what Nix knows of its closure: every store path with its name,
// version, NAR hash, deriver and references, and the installed packages'
// licenses from their meta attributes. No scanner has to guess.
package sbom

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"path"
	"regexp"
	"sort"
	"strings"
	"time"
)

// PredicateType is the in-toto predicate type of the document.
const PredicateType = "https://spdx.dev/Document"

// Path is one store path of the image.
type Path struct {
	Path       string
	NarHash    string // "sha256-<base64>" or "sha256:<base32>"
	NarSize    int64
	Deriver    string
	References []string
}

// Package is an installed package, what an INSTALL line named.
type Package struct {
	DrvPath string
	Outputs []string // store paths
	Meta    json.RawMessage
}

// Document is an SPDX 2.3 document.
type Document struct {
	SPDXVersion       string         `json:"spdxVersion"`
	DataLicense       string         `json:"dataLicense"`
	SPDXID            string         `json:"SPDXID"`
	Name              string         `json:"name"`
	DocumentNamespace string         `json:"documentNamespace"`
	CreationInfo      CreationInfo   `json:"creationInfo"`
	Packages          []SPDXPackage  `json:"packages"`
	Relationships     []Relationship `json:"relationships"`
}

type CreationInfo struct {
	Created  string   `json:"created"`
	Creators []string `json:"creators"`
}

type SPDXPackage struct {
	Name             string        `json:"name"`
	SPDXID           string        `json:"SPDXID"`
	VersionInfo      string        `json:"versionInfo,omitempty"`
	DownloadLocation string        `json:"downloadLocation"`
	FilesAnalyzed    bool          `json:"filesAnalyzed"`
	Checksums        []Checksum    `json:"checksums,omitempty"`
	LicenseConcluded string        `json:"licenseConcluded"`
	LicenseDeclared  string        `json:"licenseDeclared"`
	CopyrightText    string        `json:"copyrightText"`
	Comment          string        `json:"comment,omitempty"`
	ExternalRefs     []ExternalRef `json:"externalRefs,omitempty"`
}

type Checksum struct {
	Algorithm     string `json:"algorithm"`
	ChecksumValue string `json:"checksumValue"`
}

type ExternalRef struct {
	ReferenceCategory string `json:"referenceCategory"`
	ReferenceType     string `json:"referenceType"`
	ReferenceLocator  string `json:"referenceLocator"`
}

type Relationship struct {
	SPDXElementID      string `json:"spdxElementId"`
	RelationshipType   string `json:"relationshipType"`
	RelatedSPDXElement string `json:"relatedSpdxElement"`
}

// New describes the closure paths, of which pkgs were installed. created
// is the document's creation time (SOURCE_DATE_EPOCH, or the epoch, so the
// document is as reproducible as the image).
func New(name, tool string, paths []Path, pkgs []Package, created time.Time) *Document {
	sorted := append([]Path(nil), paths...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Path < sorted[j].Path })
	licenses := map[string]string{}
	drvs := map[string]string{}
	installed := map[string]bool{}
	for _, p := range pkgs {
		for _, o := range p.Outputs {
			installed[o] = true
			drvs[o] = p.DrvPath
			if l := License(p.Meta); l != "" {
				licenses[o] = l
			}
		}
	}
	doc := &Document{
		SPDXVersion: "SPDX-2.3",
		DataLicense: "CC0-1.0",
		SPDXID:      "SPDXRef-DOCUMENT",
		Name:        name,
		CreationInfo: CreationInfo{
			Created:  created.UTC().Format(time.RFC3339),
			Creators: []string{"Tool: " + tool},
		},
	}
	h := sha256.New()
	for _, p := range sorted {
		h.Write([]byte(p.Path + "\n"))
	}
	doc.DocumentNamespace = "https://github.com/nix-frontend/nix-frontend/spdx/" + hex.EncodeToString(h.Sum(nil))

	for _, p := range sorted {
		pname, version := NameVersion(p.Path)
		pkg := SPDXPackage{
			Name:             pname,
			SPDXID:           spdxID(p.Path),
			VersionInfo:      version,
			DownloadLocation: "NOASSERTION",
			LicenseConcluded: "NOASSERTION",
			LicenseDeclared:  "NOASSERTION",
			CopyrightText:    "NOASSERTION",
			ExternalRefs: []ExternalRef{{
				ReferenceCategory: "PACKAGE-MANAGER",
				ReferenceType:     "purl",
				ReferenceLocator:  purl(pname, version, p.Path),
			}},
		}
		if l, ok := licenses[p.Path]; ok {
			pkg.LicenseDeclared = l
		}
		if sum, ok := narSHA256(p.NarHash); ok {
			pkg.Checksums = []Checksum{{Algorithm: "SHA256", ChecksumValue: sum}}
		}
		deriver := p.Deriver
		if d, ok := drvs[p.Path]; ok {
			deriver = d
		}
		pkg.Comment = "store path " + p.Path
		if deriver != "" {
			pkg.Comment += ", built from " + deriver
		}
		doc.Packages = append(doc.Packages, pkg)
		if installed[p.Path] {
			doc.Relationships = append(doc.Relationships, Relationship{"SPDXRef-DOCUMENT", "DESCRIBES", pkg.SPDXID})
		}
		for _, r := range p.References {
			if r != p.Path {
				doc.Relationships = append(doc.Relationships, Relationship{pkg.SPDXID, "DEPENDS_ON", spdxID(r)})
			}
		}
	}
	return doc
}

var versionStart = regexp.MustCompile(`-[0-9]`)

// NameVersion splits "/nix/store/<hash>-hello-2.12.1" into "hello" and
// "2.12.1", as Nix's parseDrvName does: the version starts at the first
// dash followed by a digit.
func NameVersion(storePath string) (string, string) {
	base := path.Base(storePath)
	if i := strings.IndexByte(base, '-'); i >= 0 {
		base = base[i+1:]
	}
	if loc := versionStart.FindStringIndex(base); loc != nil {
		return base[:loc[0]], base[loc[0]+1:]
	}
	return base, ""
}

// License returns the SPDX expression of a package's meta.license:
// spdxId of a license attribute set, or of each in a list, joined with AND.
func License(meta json.RawMessage) string {
	var m struct {
		License json.RawMessage `json:"license"`
	}
	if len(meta) == 0 || json.Unmarshal(meta, &m) != nil || len(m.License) == 0 {
		return ""
	}
	type lic struct {
		SpdxID string `json:"spdxId"`
	}
	var one lic
	if json.Unmarshal(m.License, &one) == nil && one.SpdxID != "" {
		return one.SpdxID
	}
	var many []lic
	if json.Unmarshal(m.License, &many) == nil {
		var ids []string
		for _, l := range many {
			if l.SpdxID != "" {
				ids = append(ids, l.SpdxID)
			}
		}
		return strings.Join(ids, " AND ")
	}
	var s string
	if json.Unmarshal(m.License, &s) == nil {
		return s
	}
	return ""
}

func spdxID(storePath string) string {
	return "SPDXRef-Package-" + strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			return r
		}
		return '-'
	}, path.Base(storePath))
}

func purl(name, version, storePath string) string {
	s := "pkg:nix/" + name
	if version != "" {
		s += "@" + version
	}
	return s + "?store_path=" + strings.ReplaceAll(storePath, "/", "%2F")
}

// nixBase32 is Nix's base-32 alphabet.
var nixBase32 = "0123456789abcdfghijklmnpqrsvwxyz"

// narSHA256 returns the hex SHA-256 of a NAR hash in either of Nix's
// notations: SRI ("sha256-<base64>") or "sha256:<nix base32>".
func narSHA256(h string) (string, bool) {
	if b64, ok := strings.CutPrefix(h, "sha256-"); ok {
		dt, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(dt) != 32 {
			return "", false
		}
		return hex.EncodeToString(dt), true
	}
	if b32, ok := strings.CutPrefix(h, "sha256:"); ok && len(b32) == 52 {
		// Nix's base32 is little-endian over the bytes, most significant
		// character first.
		out := make([]byte, 32)
		for n := 0; n < len(b32); n++ {
			c := strings.IndexByte(nixBase32, b32[len(b32)-n-1])
			if c < 0 {
				return "", false
			}
			b := n * 5
			i, j := b/8, uint(b%8)
			out[i] |= byte(c << j)
			if i+1 < 32 {
				out[i+1] |= byte(c >> (8 - j))
			}
		}
		return hex.EncodeToString(out), true
	}
	return "", false
}

// Marshal renders the document.
func (d *Document) Marshal() ([]byte, error) { return json.MarshalIndent(d, "", "  ") }
