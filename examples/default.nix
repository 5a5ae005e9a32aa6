# Derivations for the examples, buildable offline: their builder is a static
# busybox taken from the build context (./busybox/bin/busybox).
{ greeting ? "Hello from Nix, packaged by nix-frontend!" }:
let
  busybox = builtins.path { path = ./busybox; name = "busybox"; };
  sh = "${busybox}/bin/busybox";
  # A program: a shell script whose interpreter is busybox, so its closure
  # is the script plus busybox.
  script = name: text: derivation {
    inherit name;
    system = builtins.currentSystem;
    builder = sh;
    args = [ "sh" "-c" ''
      set -e
      ${sh} mkdir -p $out/bin
      ${sh} cat > $out/bin/${builtins.head (builtins.split "-[0-9]" name)} <<'EOF'
      #!${sh} sh
      ${text}
      EOF
      ${sh} chmod 555 $out/bin/*
    '' ];
  };
in {
  inherit busybox;
  hello = script "hello-1.0" ''
    echo "${greeting}"
    echo "running from $(${sh} readlink -f "$0")"
  '';
}
