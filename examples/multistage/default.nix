# Derivations for the multi-stage example, buildable offline: their builder
# is a static busybox taken from the build context (./busybox/bin/busybox).
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
  # A build-time tool: `frame IN OUT` draws a box around the lines of IN.
  frame = script "frame-1.0" ''
    set -e
    ${sh} mkdir -p "$(${sh} dirname "$2")"
    ${sh} awk '
      { line[NR] = $0; if (length($0) > w) w = length($0) }
      END {
        b = "+"; for (i = 0; i < w + 2; i++) b = b "-"; b = b "+"
        print b
        for (i = 1; i <= NR; i++) printf "| %-" w "s |\n", line[i]
        print b
      }' "$1" > "$2"
  '';

  # The program of the final image: shows the banner the tools stage drew.
  app = script "app-1.0" ''
    ${sh} cat /etc/app/banner.txt
    echo "app 1.0 is running"
  '';
}
