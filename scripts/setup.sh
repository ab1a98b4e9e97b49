#!/usr/bin/env bash
# Install what tinycompile needs on Debian 12: the Arm toolchain, QEMU, a host C compiler and a
# Python virtual environment in .venv with the package and its test dependencies.
# Safe to run again: each step is skipped when its result is already there.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo/.venv"
python="${PYTHON:-python3}"

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

missing=()
command -v arm-none-eabi-gcc >/dev/null || missing+=(gcc-arm-none-eabi)
[ -e /usr/lib/arm-none-eabi/newlib ] || [ -e /usr/lib/arm-none-eabi/lib ] || missing+=(libnewlib-arm-none-eabi)
command -v qemu-system-arm >/dev/null || missing+=(qemu-system-arm)
command -v cc >/dev/null || missing+=(gcc libc6-dev)
"$python" -c "import ensurepip, venv" 2>/dev/null || missing+=(python3-venv)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup: installing Debian packages: ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x "$venv/bin/python" ]; then
    echo "setup: creating $venv"
    "$python" -m venv "$venv"
fi

# Reinstall only when the dependency list changed since the last install.
stamp="$venv/.tinycompile-installed"
want="$(sha256sum "$repo/pyproject.toml" | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "setup: installing tinycompile and its dependencies into $venv"
    log="$venv/pip-install.log"
    if ! "$venv/bin/pip" install --disable-pip-version-check -e "$repo[test]" >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        echo "setup: pip install failed; the full log is $log" >&2
        exit 1
    fi
    echo "$want" > "$stamp"
fi
