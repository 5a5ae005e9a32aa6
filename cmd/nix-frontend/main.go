// Command nix-frontend is a BuildKit frontend for Nixfiles.
//
// Run by BuildKit (through a `# syntax=` line) it serves the gateway API. Build
// steps run the same binary, mounted from the frontend image, with a helper
// subcommand that drives Nix next to the store (see `nix-frontend help`).
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/moby/buildkit/frontend/gateway/grpcclient"
	"github.com/moby/buildkit/util/appcontext"
	"github.com/nix-frontend/nix-frontend/frontend"
)

// Set by the linker: -X main.version=... -X main.commit=...
var (
	version = "dev"
	commit  = "unknown"
)

func main() {
	showVersion := flag.Bool("version", false, "print the version and exit")
	flag.Usage = usage
	flag.Parse()
	if *showVersion {
		fmt.Printf("nix-frontend %s (commit %s)\n", version, commit)
		return
	}
	frontend.Version = version
	if flag.NArg() > 0 {
		os.Exit(runHelper(appcontext.Context(), flag.Args()))
	}
	if err := grpcclient.RunFromEnvironment(appcontext.Context(), frontend.Build); err != nil {
		fmt.Fprintf(os.Stderr, "nix-frontend: %v\n", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintf(os.Stderr, `usage: nix-frontend [-version]
       nix-frontend <helper command>

Without arguments nix-frontend serves BuildKit's gateway API; BuildKit starts
it for Nixfiles whose first line is "# syntax=<this image>".
Helper commands run inside build steps, which give them their request:
%s`, helperUsage())
}
