# A package configured by its arguments: `nix build -f default.nix app
# --argstr greeting hi --arg repeat 2`, or INSTALL --argstr / --arg in a
# Nixfile. Buildable offline: its builder is a static busybox taken from the
# build context (./busybox/bin/busybox).
{ greeting ? "hello"  # any string
, repeat ? 1          # how many times to greet: a number, so it takes --arg
}:
assert builtins.isInt repeat && repeat > 0;
let
  busybox = builtins.path { path = ./busybox; name = "busybox"; };
  sh = "${busybox}/bin/busybox";
in {
  app = derivation {
    name = "greet-1.0";
    system = builtins.currentSystem;
    builder = sh;
    # Attributes of a derivation reach its builder as environment variables,
    # so the greeting is written out byte for byte, whatever it contains.
    inherit greeting;
    args = [ "sh" "-c" ''
      set -e
      ${sh} mkdir -p $out/bin $out/share/greet
      ${sh} printf '%s\n' "$greeting" > $out/share/greet/greeting
      ${sh} cat > $out/bin/greet <<EOF
      #!${sh} sh
      for i in \$(${sh} seq ${toString repeat}); do
        ${sh} cat $out/share/greet/greeting
      done
      EOF
      ${sh} chmod 555 $out/bin/greet
    '' ];
  };
}
