{
  description = "nix-frontend example: several packages for several systems";

  # No inputs, so that it builds offline; a real flake would take nixpkgs and
  # build its packages with it.
  outputs = { self }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAllSystems = f: builtins.listToAttrs
        (map (system: { name = system; value = f system; }) systems);

      # Import files with builtins.path rather than "${self}/src": the store
      # path then depends on these files only, so changing anything else in
      # the build context (a README, the Nixfile) neither rebuilds the
      # packages nor changes their image layers.
      src = builtins.path { path = ./src; name = "greeters-src"; };
      busybox = system: builtins.path {
        path = { x86_64-linux = ./busybox; aarch64-linux = ./busybox-aarch64; }.${system};
        name = "busybox";
      };

      # Installs src/<name>.sh as bin/<name>, with busybox as its interpreter.
      greeter = system: name: version:
        let sh = "${busybox system}/bin/busybox"; in
        derivation {
          inherit system;
          name = "${name}-${version}";
          builder = sh;
          args = [ "sh" "-c" ''
            set -e
            ${sh} mkdir -p $out/bin
            ${sh} sed '1s|^#!/bin/sh$|#!${sh} sh|' ${src}/${name}.sh > $out/bin/${name}
            ${sh} chmod 555 $out/bin/${name}
          '' ];
        } // { meta.mainProgram = name; };
    in {
      packages = forAllSystems (system: rec {
        hello = greeter system "hello" "1.0";
        goodbye = greeter system "goodbye" "1.0";
        default = hello;
      });
    };
}
