package nixbuild

import (
	"encoding/json"
	"path"
	"slices"
	"strings"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/nix-frontend/nix-frontend/nix/steps"
)

// DefaultPath is the PATH of an image whose base sets none, as in Docker.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

func cloneImage(img *dockerspec.DockerOCIImage) *dockerspec.DockerOCIImage {
	var out dockerspec.DockerOCIImage
	dt, _ := json.Marshal(img)
	_ = json.Unmarshal(dt, &out)
	return &out
}

// withPath returns env with every link root's bin directory on PATH.
func withPath(env []string, links []steps.LinkGroup) []string {
	env = slices.Clone(env)
	idx := -1
	pathVal := DefaultPath
	for i, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			idx, pathVal = i, v
		}
	}
	dirs := strings.Split(pathVal, ":")
	var add []string
	for _, l := range links {
		bin := path.Join(l.Root, "bin")
		if !slices.Contains(dirs, bin) && !slices.Contains(add, bin) {
			add = append(add, bin)
		}
	}
	pathVal = strings.Join(append(add, dirs...), ":")
	if idx >= 0 {
		env[idx] = "PATH=" + pathVal
	} else {
		env = append([]string{"PATH=" + pathVal}, env...)
	}
	return env
}
