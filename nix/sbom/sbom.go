// Package sbom writes the software bill of materials of a Nix-built image
// from what Nix knows of its closure: every store path with its name,
// version, NAR hash, deriver and references, and the installed packages'
// licenses from their meta attributes. No scanner has to guess. The document
// is SPDX 2.3, built with spdx/tools-golang's types.
package sbom

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/nix-frontend/nix-frontend/nix/protocol"
	"github.com/nix-frontend/nix-frontend/nix/storepath"
	packageurl "github.com/package-url/packageurl-go"
	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx/v2/common"
	spdx "github.com/spdx/tools-golang/spdx/v2/v2_3"
)

// PredicateType is the in-toto predicate type of the document.
const PredicateType = "https://spdx.dev/Document"

// Package is an installed package, what an INSTALL line named.
type Package struct {
	DrvPath string
	Outputs []string // store paths
	Meta    json.RawMessage
}

// New describes the closure paths, of which pkgs were installed. created
// is the document's creation time (SOURCE_DATE_EPOCH, or the epoch, so the
// document is as reproducible as the image).
func New(name, tool string, paths []protocol.PathInfo, pkgs []Package, created time.Time) *spdx.Document {
	sorted := slices.Clone(paths)
	slices.SortFunc(sorted, func(a, b protocol.PathInfo) int { return strings.Compare(a.Path, b.Path) })
	licenses := map[string]string{}
	drvs := map[string]string{}
	for _, p := range pkgs {
		for _, o := range p.Outputs {
			drvs[o] = p.DrvPath
			if l := License(p.Meta); l != "" {
				licenses[o] = l
			}
		}
	}
	h := sha256.New()
	for _, p := range sorted {
		h.Write([]byte(p.Path + "\n"))
	}
	doc := &spdx.Document{
		SPDXVersion:       spdx.Version,
		DataLicense:       spdx.DataLicense,
		SPDXIdentifier:    "DOCUMENT",
		DocumentName:      name,
		DocumentNamespace: "https://github.com/nix-frontend/nix-frontend/spdx/" + hex.EncodeToString(h.Sum(nil)),
		CreationInfo: &spdx.CreationInfo{
			Created:  created.UTC().Format(time.RFC3339),
			Creators: []common.Creator{{CreatorType: "Tool", Creator: tool}},
		},
	}
	for _, p := range sorted {
		pname, version := storepath.NameVersion(p.Path)
		pkg := &spdx.Package{
			PackageName:             pname,
			PackageSPDXIdentifier:   elementID(p.Path),
			PackageVersion:          version,
			PackageDownloadLocation: "NOASSERTION",
			PackageLicenseConcluded: "NOASSERTION",
			PackageLicenseDeclared:  "NOASSERTION",
			PackageCopyrightText:    "NOASSERTION",
			PackageExternalReferences: []*spdx.PackageExternalReference{{
				Category: common.CategoryPackageManager,
				RefType:  common.TypePackageManagerPURL,
				Locator:  purl(pname, version, p.Path),
			}},
		}
		if l, ok := licenses[p.Path]; ok {
			pkg.PackageLicenseDeclared = l
		}
		if sum, err := storepath.ParseNarHash(p.NarHash); err == nil {
			pkg.PackageChecksums = []common.Checksum{{Algorithm: common.SHA256, Value: sum.Hex()}}
		}
		deriver := p.Deriver
		if d, ok := drvs[p.Path]; ok {
			deriver = d
		}
		pkg.PackageComment = "store path " + p.Path
		if deriver != "" {
			pkg.PackageComment += ", built from " + deriver
		}
		doc.Packages = append(doc.Packages, pkg)
		if _, installed := drvs[p.Path]; installed {
			doc.Relationships = append(doc.Relationships, &spdx.Relationship{
				RefA: common.MakeDocElementID("", "DOCUMENT"), RefB: common.MakeDocElementID("", string(pkg.PackageSPDXIdentifier)),
				Relationship: common.TypeRelationshipDescribe})
		}
		for _, r := range p.References {
			if r != p.Path {
				doc.Relationships = append(doc.Relationships, &spdx.Relationship{
					RefA: common.MakeDocElementID("", string(pkg.PackageSPDXIdentifier)), RefB: common.MakeDocElementID("", string(elementID(r))),
					Relationship: common.TypeRelationshipDependsOn})
			}
		}
	}
	return doc
}

// Write renders a document as JSON.
func Write(doc *spdx.Document, w io.Writer) error {
	return spdxjson.Write(doc, w, spdxjson.Indent("  "))
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

// elementID is a store path's SPDX identifier (without "SPDXRef-").
func elementID(storePath string) common.ElementID {
	return common.ElementID("Package-" + strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			return r
		}
		return '-'
	}, storepath.Base(storePath)))
}

// purl is a store path's package URL: pkg:nix/<name>@<version>, with the
// store path as a qualifier.
func purl(name, version, storePath string) string {
	return packageurl.NewPackageURL("nix", "", name, version,
		packageurl.QualifiersFromMap(map[string]string{"store_path": storePath}), "").ToString()
}
