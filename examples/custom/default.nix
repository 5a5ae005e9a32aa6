# The program of the customisation example, buildable offline: its builder is
# a static busybox taken from the build context (./busybox/bin/busybox).
let
  busybox = builtins.path { path = ./busybox; name = "busybox"; };
  sh = "${busybox}/bin/busybox";
in {
  # app tells who and where it runs, and records each run in visits.log in
  # its working directory, which must be writable by its user.
  app = derivation {
    name = "app-1.0";
    system = builtins.currentSystem;
    builder = sh;
    args = [ "sh" "-c" ''
      set -e
      ${sh} mkdir -p $out/bin
      ${sh} cat > $out/bin/app <<'EOF'
      #!${sh} sh
      set -e
      echo "user: $(${sh} id -un) (uid $(${sh} id -u))"
      echo "workdir: $(pwd)"
      echo "visit" >> visits.log
      echo "visits.log: $(${sh} wc -l < visits.log) visit(s), owned by $(${sh} stat -c %U visits.log)"
      EOF
      ${sh} chmod 555 $out/bin/app
    '' ];
  };
}
