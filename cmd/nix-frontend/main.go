// Command nix-frontend is a BuildKit frontend for Nixfiles. Run by BuildKit
// (through `# syntax=`) it serves the gateway API; run with a helper
// subcommand inside a build step it evaluates, builds and exports Nix store
// paths.
package main

import (
	"flag"
	"fmt"
	"os"
)

// Set by the linker: -X main.version=... -X main.commit=...
var (
	version = "dev"
	commit  = "unknown"
)

func main() {
	showVersion := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *showVersion {
		fmt.Printf("nix-frontend %s (commit %s)\n", version, commit)
		return
	}
	fmt.Fprintln(os.Stderr, "nix-frontend: not implemented yet")
	os.Exit(1)
}
