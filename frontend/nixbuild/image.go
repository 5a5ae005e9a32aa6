package nixbuild

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/nix-frontend/nix-frontend/llb/nixstep"
	"github.com/nix-frontend/nix-frontend/llb/storelayers"
	"github.com/nix-frontend/nix-frontend/nix/imagearchive"
	"github.com/nix-frontend/nix-frontend/nix/protocol"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// DefaultPath is the PATH of an image whose base sets none, as in Docker.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// image merges one layer per store path (or group) and the link layer onto
// the base, and extends the base's config.
func (p *plan) image(ctx context.Context, jobs []*job, paths []protocol.PathInfo, links linkGroups) (llb.State, *dockerspec.DockerOCIImage, []string, error) {
	s := p.stage
	linkRun, programs, err := p.links(ctx, links)
	if err != nil {
		return llb.State{}, nil, nil, err
	}
	budget := p.b.MaxLayers
	if budget <= 0 {
		budget = storelayers.DefaultMaxLayers
	}
	budget -= s.BaseLayers
	if linkRun != nil {
		budget--
	}
	if budget < 1 {
		return llb.State{}, nil, nil, fmt.Errorf("the layer budget NIX_MAX_LAYERS=%d leaves no room for store paths after the base image's %d layers; raise it", p.b.MaxLayers, s.BaseLayers)
	}
	layers := storelayers.Plan(paths, budget)
	steps := make([]planStep, len(layers))
	for i, l := range layers {
		steps[i] = planStep{Step: nixstep.Step{Name: "[nix] layer " + l.Describe(), Request: l.Request(), Access: nixstep.Hermetic}}
	}
	runs, err := p.steps(steps...)
	if err != nil {
		return llb.State{}, nil, nil, err
	}
	img := cloneImage(s.BaseImage)
	states := []llb.State{s.Base}
	for i, l := range layers {
		states = append(states, runs[i].Out)
		img.History = append(img.History, l.History())
	}
	if linkRun != nil {
		states = append(states, linkRun.Out)
		h := storelayers.Layer{}.History()
		h.CreatedBy = "nix-frontend: links in " + linkRoots(links.groups)
		img.History = append(img.History, h)
	}
	img.Config.Env = withPath(img.Config.Env, links.groups)
	if s.EntrypointFromMeta && len(jobs) > 0 && len(links.groups) > 0 {
		img.Config.Entrypoint, img.Config.Cmd = []string{path.Join(links.groups[0].Root, "bin", jobs[0].main)}, nil
	}
	merged := llb.Merge(states, llb.WithCustomName(fmt.Sprintf("[nix %s] merge %d store paths", s.Name, len(paths))))
	return merged, img, programs, nil
}

// links runs the step that writes the link tree, nil when there is no link
// tree to write.
func (p *plan) links(ctx context.Context, links linkGroups) (*nixstep.Run, []string, error) {
	if len(links.groups) == 0 {
		return nil, nil, nil
	}
	var locs []parser.Range
	for _, l := range links.locs {
		locs = append(locs, l...)
	}
	runs, err := p.steps(planStep{Step: nixstep.Step{
		Name:    fmt.Sprintf("[nix %s] link tree in %s", p.stage.Name, linkRoots(links.groups)),
		Request: protocol.LinksRequest{Groups: links.groups},
		Access:  nixstep.Hermetic,
		Meta:    true,
	}, locs: locs, groups: links.locs})
	if err != nil {
		return nil, nil, err
	}
	var res protocol.LinksResult
	if err := p.readJSON(ctx, runs[0].Meta, protocol.LinksFile, &res); err != nil {
		return nil, nil, err
	}
	if err := res.Validate(); err != nil {
		return nil, nil, err
	}
	if res.Empty {
		return nil, nil, nil
	}
	return &runs[0], res.Programs, nil
}

// imageArchive makes the image an image tarball built by Nix describes: one
// layer per layer of the tarball, which BuildKit unpacks, and its config.
func (p *plan) imageArchive(ctx context.Context, j *job) (llb.State, *dockerspec.DockerOCIImage, error) {
	var archive string
	for _, o := range j.outputs {
		archive = o
	}
	runs, err := p.steps(planStep{Step: nixstep.Step{
		Name:    fmt.Sprintf("[nix %s] unpack image tarball %s", p.stage.Name, path.Base(archive)),
		Request: protocol.UnpackRequest{Archive: archive},
		Access:  nixstep.Hermetic,
	}, locs: j.locs})
	if err != nil {
		return llb.State{}, nil, err
	}
	out := runs[0].Out
	var res protocol.ArchiveResult
	if err := p.readJSON(ctx, out, protocol.ArchiveFile, &res); err != nil {
		return llb.State{}, nil, err
	}
	if err := res.Validate(); err != nil {
		return llb.State{}, nil, err
	}
	var img dockerspec.DockerOCIImage
	if err := p.readJSON(ctx, out, path.Join(protocol.ArchiveDir, imagearchive.ConfigFile), &img); err != nil {
		return llb.State{}, nil, err
	}
	if img.OS == "" {
		img.Platform = p.stage.BaseImage.Platform
	}
	img.RootFS.DiffIDs = nil
	img.History = nil
	states := []llb.State{llb.Scratch()}
	for i := 0; i < res.Layers; i++ {
		// BuildKit unpacks the tar as ADD does, keeping every entry
		// inside the layer whatever symlinks the tar holds.
		src := "/" + path.Join(protocol.ArchiveDir, imagearchive.LayerFile(i))
		states = append(states, llb.Scratch().File(llb.Copy(out, src, "/", &llb.CopyInfo{AttemptUnpack: true, CreateDestPath: true}),
			llb.WithCustomName(fmt.Sprintf("[nix %s] image tarball layer %d", p.stage.Name, i+1))))
		created := storelayers.Epoch
		img.History = append(img.History, ocispecs.History{Created: &created, CreatedBy: fmt.Sprintf("nix-frontend: layer %d of the image tarball", i+1), Comment: "nix-frontend"})
	}
	return llb.Merge(states, llb.WithCustomName(fmt.Sprintf("[nix %s] merge image tarball", p.stage.Name))), &img, nil
}

// push uploads the closure to the Nix binary cache NIX_PUSH_CACHE.
func (p *plan) push(ctx context.Context, paths []protocol.PathInfo) error {
	req := protocol.PushRequest{URL: p.b.PushCache, Recover: p.recover}
	for _, pi := range paths {
		req.Paths = append(req.Paths, pi.Path)
	}
	runs, err := p.steps(planStep{Step: nixstep.Step{
		Name:       fmt.Sprintf("[nix %s] push closure to %s", p.stage.Name, p.b.PushCache),
		Request:    req,
		Access:     nixstep.Fetching,
		UserConfig: true,
	}, locs: p.allLocations()})
	if err != nil {
		return err
	}
	var res protocol.PushResult
	return p.readJSON(ctx, runs[0].Out, protocol.PushedFile, &res)
}

func cloneImage(img *dockerspec.DockerOCIImage) *dockerspec.DockerOCIImage {
	var out dockerspec.DockerOCIImage
	dt, _ := json.Marshal(img)
	_ = json.Unmarshal(dt, &out)
	return &out
}

// withPath returns env with every link root's bin directory on PATH.
func withPath(env []string, links []protocol.LinkGroup) []string {
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

func linkRoots(links []protocol.LinkGroup) string {
	var roots []string
	for _, l := range links {
		if !slices.Contains(roots, l.Root) {
			roots = append(roots, l.Root)
		}
	}
	slices.Sort(roots)
	return strings.Join(roots, ", ")
}
