#!/usr/bin/env bash
# Installs what building verge needs on a fresh Debian/Ubuntu machine: cmake and a C compiler
# (pingora builds zlib-ng and ring from C), plus the extra tools a target names
# (e.g. `scripts/setup.sh wrk`). Says clearly what is missing when it cannot install.
set -euo pipefail

need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v cc >/dev/null 2>&1 || need+=(gcc)
command -v make >/dev/null 2>&1 || need+=(make)
for tool in "$@"; do
  case "$tool" in
    # A package that is a module, not a command: look for its file.
    libnginx-mod-http-js) [ -e /usr/lib/nginx/modules/ngx_http_js_module.so ] || need+=("$tool") ;;
    # Debian installs nginx in /usr/sbin, which is not on every user's PATH.
    nginx) command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=("$tool") ;;
    *) command -v "$tool" >/dev/null 2>&1 || need+=("$tool") ;;
  esac
done

if ((${#need[@]})); then
  echo "setup: installing ${need[*]}" >&2
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  elif command -v sudo >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    sudo apt-get update -qq
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "setup: cannot install ${need[*]}: no apt-get with root or sudo here." >&2
    echo "setup: install them with your package manager, then run the command again." >&2
    exit 1
  fi
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo is not installed; install Rust (1.91 or newer) from your distribution or rustup." >&2
  exit 1
fi
rustc_minor=$(rustc --version | sed -E 's/rustc 1\.([0-9]+).*/\1/')
if [ "${rustc_minor:-0}" -lt 91 ]; then
  echo "setup: rustc $(rustc --version) is too old; verge needs 1.91 or newer (boa_engine 0.22)." >&2
  exit 1
fi
# Disk: a cold release build of verge and its tests takes about 2.5 GB under target/, and the C
# compiler writes its temporary files under $TMPDIR. Running out half-way fails deep inside a
# dependency's build script ("No space left on device"), so say it here, before cargo starts.
free_mib() { df -Pm "$1" 2>/dev/null | awk 'NR == 2 { print $4 }'; }
target_dir=${CARGO_TARGET_DIR:-target}
mkdir -p "$target_dir"
if [ -d "$target_dir/release/deps" ]; then need_mib=1024; else need_mib=5120; fi
have_mib=$(free_mib "$target_dir")
if [ -n "$have_mib" ] && [ "$have_mib" -lt "$need_mib" ]; then
  echo "setup: only ${have_mib} MiB free for $target_dir; building verge needs about ${need_mib} MiB." >&2
  echo "setup: free some space (or point CARGO_TARGET_DIR at a larger disk), then run the command again." >&2
  exit 1
fi
tmp_mib=$(free_mib "${TMPDIR:-/tmp}")
if [ -n "$tmp_mib" ] && [ "$tmp_mib" -lt 256 ]; then
  echo "setup: only ${tmp_mib} MiB free in ${TMPDIR:-/tmp}, where the C compiler writes; it needs 256 MiB." >&2
  exit 1
fi

for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    if command -v rustup >/dev/null 2>&1; then
      rustup component add "$component"
    else
      echo "setup: cargo $component is missing and rustup is not available to add it." >&2
      exit 1
    fi
  fi
done
