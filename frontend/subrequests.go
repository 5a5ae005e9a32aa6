package frontend

import (
	"bytes"
	"encoding/json"

	"github.com/moby/buildkit/frontend/gateway/client"
	"github.com/moby/buildkit/frontend/subrequests"
	"github.com/moby/buildkit/frontend/subrequests/lint"
	"github.com/moby/buildkit/frontend/subrequests/outline"
	"github.com/moby/buildkit/frontend/subrequests/targets"
)

// pushPreviewDefinition describes PushPreviewRequest to
// `docker buildx build --call=subrequests.describe`.
var pushPreviewDefinition = subrequests.Request{
	Name:        PushPreviewRequest,
	Version:     "1.0",
	Type:        subrequests.TypeRPC,
	Description: "List the layers of the Nix-built stages and which of them a push would send",
	Opts: []subrequests.Named{{
		Name:        "build-arg:" + ArgPreviousImage,
		Description: "the image in the registry to compare with",
	}},
	Metadata: []subrequests.Named{
		{Name: "result.json", Description: "JSON"},
		{Name: "result.txt", Description: "a table"},
	},
}

// describe answers subrequests.describe: BuildKit's Dockerfile subrequests,
// which dockerui handles, and the push preview.
func describe() (*client.Result, error) {
	all := []subrequests.Request{
		outline.SubrequestsOutlineDefinition,
		targets.SubrequestsTargetsDefinition,
		lint.SubrequestLintDefinition,
		pushPreviewDefinition,
		subrequests.SubrequestsDescribeDefinition,
	}
	dt, err := json.MarshalIndent(all, "", "  ")
	if err != nil {
		return nil, err
	}
	var txt bytes.Buffer
	if err := subrequests.PrintDescribe(dt, &txt); err != nil {
		return nil, err
	}
	res := client.NewResult()
	res.AddMeta("result.json", dt)
	res.AddMeta("result.txt", txt.Bytes())
	res.AddMeta("version", []byte(subrequests.SubrequestsDescribeDefinition.Version))
	return res, nil
}
