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
	"github.com/nix-frontend/nix-frontend/frontend/nixfile"
	"github.com/nix-frontend/nix-frontend/llb/nixstep"
	"github.com/nix-frontend/nix-frontend/llb/storelayers"
	"github.com/nix-frontend/nix-frontend/nix/imagearchive"
	"github.com/nix-frontend/nix-frontend/nix/protocol"
	"github.com/nix-frontend/nix-frontend/nix/storepath"
)

// DefaultPath is the PATH of an image whose base sets none, as in Docker.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// layout is the Nix part of a stage's image, layer by layer: the store
// paths' layers, the link layer and the basics of a FROM scratch image.
type layout struct {
	layers  []storelayers.Layer
	link    *nixstep.Run // nil when there is no link tree
	linkID  string
	linked  protocol.LinksResult
	basics  basics
	basicsL *llb.State // nil when the stage gets no basics layer
}

// layout runs the link step and plans the layers within the budget.
func (p *plan) layout(ctx context.Context, paths []protocol.PathInfo, links linkGroups) (*layout, error) {
	s := p.stage
	var closure []string
	if s.Basics {
		for _, pi := range paths {
			closure = append(closure, pi.Path)
		}
	}
	l := &layout{linkID: storelayers.ContentID(links.groups)}
	var err error
	if l.link, l.linked, err = p.links(ctx, links, closure); err != nil {
		return nil, err
	}
	if s.Basics {
		l.basics = newBasics(s.User, l.linked)
		if st, ok := l.basics.layer(); ok {
			l.basicsL = &st
		}
	}
	p.warnings = append(p.warnings, p.checkTLS(paths, l.linked)...)
	budget := p.b.MaxLayers
	if budget <= 0 {
		budget = storelayers.DefaultMaxLayers
	}
	budget -= s.BaseLayers
	if l.link != nil {
		budget--
	}
	if l.basicsL != nil {
		budget--
	}
	if budget < 1 {
		return nil, fmt.Errorf("the layer budget NIX_MAX_LAYERS=%d leaves no room for store paths after the base image's %d layers; raise it", p.b.MaxLayers, s.BaseLayers)
	}
	l.layers = storelayers.Plan(paths, budget)
	return l, nil
}

// PreviewLayer is a layer a build would push, for a push preview.
type PreviewLayer struct {
	// ID names the layer's contents (see storelayers.HistoryID).
	ID          string   `json:"id"`
	Description string   `json:"description"`
	Paths       []string `json:"paths,omitempty"`
	// Size is the NAR size of the store paths, uncompressed.
	Size int64 `json:"size"`
}

// preview lists a layout's layers.
func (p *plan) preview(l *layout, links linkGroups) []PreviewLayer {
	var out []PreviewLayer
	for _, ly := range l.layers {
		pl := PreviewLayer{ID: ly.ID(), Description: ly.Describe(), Size: ly.Size()}
		for _, pi := range ly.Paths {
			pl.Paths = append(pl.Paths, pi.Path)
		}
		out = append(out, pl)
	}
	if l.link != nil {
		out = append(out, PreviewLayer{ID: l.linkID, Description: "links in " + linkRoots(links.groups)})
	}
	if l.basicsL != nil {
		h, _ := storelayers.HistoryID(l.basics.history().CreatedBy)
		out = append(out, PreviewLayer{ID: h, Description: "passwd, group, /tmp and CA certificates"})
	}
	return out
}

// image merges one layer per store path (or group), the link layer and the
// basics onto the base, and extends the base's config.
func (p *plan) image(ctx context.Context, jobs []*job, l *layout, paths []protocol.PathInfo, links linkGroups) (llb.State, *dockerspec.DockerOCIImage, error) {
	s := p.stage
	planned := storelayers.Steps(l.layers, layerSources(jobs, l.layers), p.recordedSteps(jobs))
	steps := make([]planStep, len(planned))
	for i, st := range planned {
		if !st.Recorded {
			st.Request.Recover = p.recoverFor(st.Request.StorePaths())
		}
		steps[i] = planStep{Step: nixstep.Step{Name: layerStepName(l.layers, st), Request: st.Request, Access: nixstep.Hermetic, Layers: len(st.Writes)}}
	}
	runs, err := p.steps(steps...)
	if err != nil {
		return llb.State{}, nil, err
	}
	stepStates := make([]llb.State, len(runs))
	layerStates := make([]llb.State, len(l.layers))
	for k, r := range runs {
		for j, i := range planned[k].Writes {
			if i >= 0 {
				layerStates[i] = r.Layers[j]
				// Solve the step through a layer this image has: a
				// recorded step's other layers may be in no cache a
				// builder imported, and asking for them would run it.
				stepStates[k] = r.Layers[j]
			}
		}
	}
	if !p.b.Preview {
		if err := p.runAll(ctx, stepStates); err != nil {
			return llb.State{}, nil, err
		}
	}
	img := cloneImage(s.BaseImage)
	states := []llb.State{s.Base}
	for i, ly := range l.layers {
		states = append(states, layerStates[i])
		img.History = append(img.History, ly.History())
	}
	if l.link != nil {
		states = append(states, l.link.Out)
		img.History = append(img.History, storelayers.History("links in "+linkRoots(links.groups), l.linkID))
	}
	if l.basicsL != nil {
		states = append(states, *l.basicsL)
		img.History = append(img.History, l.basics.history())
	}
	img.Config.Env = withPath(img.Config.Env, links.groups)
	if s.Basics {
		img.Config.Env = append(img.Config.Env, l.basics.env()...)
	}
	if s.EntrypointFromMeta && len(jobs) > 0 && len(links.groups) > 0 {
		img.Config.Entrypoint, img.Config.Cmd = []string{path.Join(links.groups[0].Root, "bin", jobs[0].main)}, nil
	}
	merged := llb.Merge(states, llb.WithCustomName(fmt.Sprintf("[nix %s] merge %d store paths", s.Name, len(paths))))
	return merged, img, nil
}

// layerSources says where each layer comes from, for storelayers.Steps:
// the first job whose closure holds the layer's first path.
func layerSources(jobs []*job, layers []storelayers.Layer) func(int) int {
	first := map[string]int{}
	for j := len(jobs) - 1; j >= 0; j-- {
		for _, pi := range jobs[j].result.Closure {
			first[pi.Path] = j
		}
	}
	return func(i int) int { return first[layers[i].Paths[0].Path] }
}

// recordedSteps are the layer steps a job's build step reported, but for
// those that need a path the store lost: they would fail again.
func (p *plan) recordedSteps(jobs []*job) func(int) []protocol.LayerRequest {
	return func(j int) []protocol.LayerRequest {
		return slices.DeleteFunc(slices.Clone(jobs[j].result.LayerSteps), func(r protocol.LayerRequest) bool {
			return p.recoverFor(r.StorePaths()) != ""
		})
	}
}

// layerStepName is a layer step's progress line: "[nix] layer" and the
// store path of a step that writes one layer, else how many layers it
// writes and the first few of this image's.
func layerStepName(layers []storelayers.Layer, st storelayers.Step) string {
	if len(st.Writes) == 1 && st.Writes[0] >= 0 {
		return "[nix] layer " + layers[st.Writes[0]].Describe()
	}
	var names []string
	for _, i := range st.Writes {
		if i >= 0 {
			names = append(names, layers[i].Paths[0].Name())
		}
	}
	return fmt.Sprintf("[nix] layer ×%d: %s", len(st.Writes), strings.Join(shortList(names), ", "))
}

// links runs the step that writes the link tree and looks in the closure
// for a CA bundle. The run is nil when the link tree is empty; there is no
// step when there are neither link groups nor a closure to look in.
func (p *plan) links(ctx context.Context, links linkGroups, closure []string) (*nixstep.Run, protocol.LinksResult, error) {
	var res protocol.LinksResult
	if len(links.groups) == 0 && len(closure) == 0 {
		return nil, res, nil
	}
	var locs []parser.Range
	for _, l := range links.locs {
		locs = append(locs, l...)
	}
	name := fmt.Sprintf("[nix %s] link tree in %s", p.stage.Name, linkRoots(links.groups))
	if len(links.groups) == 0 {
		name = fmt.Sprintf("[nix %s] link tree: none, look for a CA bundle", p.stage.Name)
	}
	runs, err := p.steps(planStep{Step: nixstep.Step{
		Name:    name,
		Request: protocol.LinksRequest{Groups: links.groups, Closure: closure, Recover: p.recoverFor(closure)},
		Access:  nixstep.Hermetic,
		Meta:    true,
	}, locs: locs, groups: links.locs})
	if err != nil {
		return nil, res, err
	}
	if err := p.readJSON(ctx, runs[0].Meta, protocol.LinksFile, &res); err != nil {
		return nil, res, err
	}
	if err := res.Validate(); err != nil {
		return nil, res, err
	}
	if res.Empty {
		return nil, res, nil
	}
	return &runs[0], res, nil
}

// tlsLibraries are the names of store paths that make TLS connections and
// need CA certificates to check them.
var tlsLibraries = []string{"openssl", "gnutls", "libressl", "mbedtls", "wolfssl", "nss", "boringssl", "s2n-tls", "curl"}

// checkTLS warns when the closure has a TLS library but no CA bundle: TLS
// connections from the image will fail to verify.
func (p *plan) checkTLS(paths []protocol.PathInfo, linked protocol.LinksResult) []nixfile.Warning {
	if !p.stage.Basics || linked.CABundle != "" || slices.Contains(linked.Provides, "etc/ssl/certs/ca-certificates.crt") {
		return nil
	}
	for _, pi := range paths {
		if lib := storepath.PName(pi.Name()); slices.Contains(tlsLibraries, lib) {
			r := nixfile.RuleMissingCABundle
			return []nixfile.Warning{{RuleName: r.Name, Description: r.Description, URL: r.URL, Message: r.Format(pi.Name()), Location: p.allLocations()}}
		}
	}
	return nil
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
		img.History = append(img.History, storelayers.History(fmt.Sprintf("layer %d of the image tarball %s", i+1, path.Base(archive)),
			storelayers.ContentID([]any{archive, i})))
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
