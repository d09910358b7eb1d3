#!/usr/bin/env bash
# Installs Horovod 0.28.1 (PyTorch + Gloo; NCCL too when torch is a CUDA build) into the project venv.
# Horovod's last release hard-codes C++14 and does not build against torch >= 2.1, so we build it from
# the sdist with C++17 (see ../shared/RECIPES.md). The wheel is cached in .cache/wheels/ under a name
# that carries horovod's version, the Python tag, torch's version and the CPU/CUDA flavour, because the
# extension links against torch's C++ ABI. Steps, each skipped when already done:
#   1. horovod.torch imports and the installed version matches this torch -> nothing to do
#   2. a cached wheel for this key exists -> pip install --no-deps it (seconds)
#   3. else download the sdist (sha256-checked), patch it, pip wheel it into the cache (~7 min on 2 busy cores), install
#
#   bash scripts/build_horovod.sh              # CROSSREC_VENV=/path/to/venv to target another venv
#   HOROVOD_BUILD_CUDA_CC_LIST=80,90 bash scripts/build_horovod.sh   # CUDA: build kernels for these GPUs only
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CROSSREC_VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"
CACHE="$ROOT/.cache/wheels"  # git-ignored (.cache/)
LOG="$ROOT/.cache/horovod-build.log"
HVD_VERSION="0.28.1"
HVD_SDIST="horovod-$HVD_VERSION.tar.gz"
HVD_SHA256="92a43f5a94c43907a56805bad15f19700c62ffc83b7ca483f9e104e229f67ef0"
# install_requires of 0.28.1's setup.py (cffi is added when the torch extension is built). Installed
# before building too: setup.py also passes them as setup_requires to bdist_wheel.
HVD_DEPS=(cloudpickle psutil pyyaml packaging "cffi>=1.4.0")
# Gloo's CMakeLists asks for cmake 2.8.12, which cmake 4 refuses; horovod needs >= 3.13.
CMAKE_PYPI_SPEC="cmake>=3.13,<4"

die() { printf 'build_horovod: error: %s\n' "$*" >&2; exit 1; }
say() { printf 'build_horovod: %s\n' "$*" >&2; }

# Runs a command with its output appended to $LOG; on failure shows the log's tail and its path.
logged() {
    local what="$1"; shift
    printf '\n=== %s: %s\n' "$what" "$*" >>"$LOG"
    if ! "$@" >>"$LOG" 2>&1; then
        tail -n 25 "$LOG" >&2
        die "$what failed; full log: $LOG"
    fi
}

pip_() { "$PY" -m pip --disable-pip-version-check "$@"; }

# Sets FLAVOUR (cpu | cu128 ...), LOCAL (the wheel's local version label), PYTAG (cp311), TORCH_CUDA, WANT_VERSION.
read_torch() {
    [[ -x "$PY" ]] || die "no Python at $PY; run scripts/setup.sh first (or set CROSSREC_VENV)"
    "$PY" -c 'import sys' 2>/dev/null || die "$PY does not run; remove $VENV and rerun scripts/setup.sh"
    local facts
    facts="$("$PY" - <<'EOF' 2>>"$LOG"
import re, sys
try:
    import torch
except Exception as e:  # noqa: BLE001 - any import failure means "install torch first"
    sys.exit(f"torch does not import: {e!r}")
flavour = "cpu" if torch.version.cuda is None else "cu" + torch.version.cuda.replace(".", "")
local = "torch" + re.sub(r"[^0-9A-Za-z]+", ".", torch.__version__)  # 2.13.0+cpu -> torch2.13.0.cpu
if not local.endswith("." + flavour):
    local += "." + flavour
print(flavour, local, f"cp{sys.version_info.major}{sys.version_info.minor}", torch.version.cuda or "")
EOF
    )" || die "torch is not importable from $PY (details: $LOG); run scripts/setup.sh first"
    read -r FLAVOUR LOCAL PYTAG TORCH_CUDA <<<"$facts"
    WANT_VERSION="$HVD_VERSION+$LOCAL"
}

installed_ok() {
    "$PY" - "$WANT_VERSION" >>"$LOG" 2>&1 <<'EOF'
import sys
from importlib.metadata import version, PackageNotFoundError
try:
    have = version("horovod")
except PackageNotFoundError:
    sys.exit("horovod not installed")
if have != sys.argv[1]:
    sys.exit(f"horovod {have} installed, want {sys.argv[1]}")
import horovod.torch  # noqa: F401 - fails when the extension does not match torch
EOF
}

# Sets CMAKE_BIN to a cmake >= 3.13: the system's, else one from PyPI inside the venv.
find_cmake() {
    local c ver
    for c in "$(command -v cmake || true)" "$VENV/bin/cmake"; do
        [[ -n "$c" && -x "$c" ]] || continue
        ver="$("$c" --version 2>/dev/null | sed -n 's/^cmake version \([0-9.]*\).*/\1/p')"
        if [[ -n "$ver" ]] && printf '3.13\n%s\n' "$ver" | sort -C -V; then
            CMAKE_BIN="$c"; return 0
        fi
    done
    say "no cmake >= 3.13 found; installing '$CMAKE_PYPI_SPEC' from PyPI into $VENV"
    logged "pip install cmake" pip_ install --progress-bar off "$CMAKE_PYPI_SPEC"
    CMAKE_BIN="$VENV/bin/cmake"
}

check_build_tools() {
    command -v g++ >/dev/null 2>&1 \
        || die "g++ not found; Horovod compiles C++17 (Debian/Ubuntu: sudo apt-get install g++)"
    command -v make >/dev/null 2>&1 \
        || die "make not found (Debian/Ubuntu: sudo apt-get install make)"
    find_cmake
    # torch 2.13's own metadata needs setuptools>=77; bdist_wheel needs wheel.
    if ! "$PY" -c 'import wheel, setuptools, sys; sys.exit(int(setuptools.__version__.split(".")[0]) < 77)' 2>/dev/null; then
        say "installing wheel and setuptools>=77 into $VENV"
        logged "pip install wheel setuptools" pip_ install --progress-bar off wheel "setuptools>=77"
    fi
}

# CUDA torch: build NCCL ops. Exports the HOROVOD_* variables horovod's CMake reads.
setup_cuda() {
    # A toolkit directory (bin/nvcc and headers). nvcc on PATH last: it may be a wrapper script
    # (this machine's /usr/local/bin/nvcc execs /usr/local/cuda-13.0/bin/nvcc) that says nothing of home.
    local home="" c
    if [[ -n "${HOROVOD_CUDA_HOME:-}" && ! -x "$HOROVOD_CUDA_HOME/bin/nvcc" ]]; then
        die "HOROVOD_CUDA_HOME=$HOROVOD_CUDA_HOME has no bin/nvcc"
    fi
    for c in "${HOROVOD_CUDA_HOME:-}" "${CUDA_HOME:-}" /usr/local/cuda \
             "$(dirname "$(dirname "$(readlink -f "$(command -v nvcc || echo /none/bin/nvcc)")")")"; do
        [[ -n "$c" && -x "$c/bin/nvcc" && -f "$c/include/cuda_runtime.h" ]] && { home="$c"; break; }
    done
    [[ -n "$home" ]] || die "torch is a CUDA $TORCH_CUDA build but no CUDA toolkit (bin/nvcc, include/) was found in
       \$HOROVOD_CUDA_HOME, \$CUDA_HOME, /usr/local/cuda or beside nvcc on PATH; install the CUDA $TORCH_CUDA toolkit
       or set HOROVOD_CUDA_HOME"
    export HOROVOD_CUDA_HOME="$home"
    local nvcc="$home/bin/nvcc"
    local nv_release
    nv_release="$("$nvcc" --version | sed -n 's/.*release \([0-9][0-9]*\.[0-9]*\).*/\1/p')"
    [[ "${nv_release%%.*}" == "${TORCH_CUDA%%.*}" ]] \
        || say "warning: nvcc is CUDA $nv_release but torch was built for CUDA $TORCH_CUDA"
    if [[ -z "${HOROVOD_NCCL_HOME:-}${HOROVOD_NCCL_INCLUDE:-}${HOROVOD_NCCL_LIB:-}" ]]; then
        # pip's CUDA torch depends on nvidia-nccl-cuXX, which ships only libnccl.so.2; CMake's
        # find_library wants libnccl.so, so point it at a directory of links.
        local nccl
        nccl="$("$PY" -c 'import nvidia.nccl, os; print(os.path.dirname(nvidia.nccl.__file__) if nvidia.nccl.__file__ else list(nvidia.nccl.__path__)[0])' 2>/dev/null)" \
            || die "torch is a CUDA build but NCCL was not found: no nvidia.nccl package in $VENV and no
       HOROVOD_NCCL_HOME set (pip install nvidia-nccl-cu${TORCH_CUDA%%.*}, or point HOROVOD_NCCL_HOME at NCCL)"
        [[ -f "$nccl/include/nccl.h" && -f "$nccl/lib/libnccl.so.2" ]] \
            || die "NCCL in $nccl lacks include/nccl.h or lib/libnccl.so.2"
        local shim="$WORK/nccl"
        mkdir -p "$shim/lib"
        ln -s "$nccl/include" "$shim/include"
        ln -s "$nccl/lib/libnccl.so.2" "$shim/lib/libnccl.so"
        export HOROVOD_NCCL_HOME="$shim"
    fi
    export HOROVOD_NCCL_LINK="${HOROVOD_NCCL_LINK:-SHARED}" HOROVOD_GPU_OPERATIONS=NCCL
    say "CUDA flavour: nvcc $nv_release in $HOROVOD_CUDA_HOME, NCCL from $HOROVOD_NCCL_HOME${HOROVOD_NCCL_INCLUDE:-}"
}

# Puts the sha256-checked sdist at $CACHE/$HVD_SDIST.
fetch_sdist() {
    local have=""
    [[ -f "$CACHE/$HVD_SDIST" ]] && have="$(sha256sum "$CACHE/$HVD_SDIST" | cut -d' ' -f1)"
    [[ "$have" == "$HVD_SHA256" ]] && return 0
    [[ -n "$have" ]] && say "cached $HVD_SDIST has sha256 $have, not $HVD_SHA256; downloading again"
    say "downloading $HVD_SDIST from PyPI"
    # Hash-checking mode: pip refuses a mismatching file before running its setup.py for metadata.
    printf 'horovod==%s --hash=sha256:%s\n' "$HVD_VERSION" "$HVD_SHA256" >"$WORK/req.txt"
    logged "pip download" pip_ download --no-deps --no-binary :all: --no-build-isolation \
        --require-hashes -r "$WORK/req.txt" -d "$WORK/dl"
    have="$(sha256sum "$WORK/dl/$HVD_SDIST" | cut -d' ' -f1)"
    [[ "$have" == "$HVD_SHA256" ]] || die "$HVD_SDIST sha256 is $have, expected $HVD_SHA256"
    mv "$WORK/dl/$HVD_SDIST" "$CACHE/$HVD_SDIST"
}

# C++14 -> C++17 in the two CMakeLists that set it; torch >= 2.1 headers need C++17.
patch_sources() {
    local src="$1" f
    for f in CMakeLists.txt horovod/torch/CMakeLists.txt; do
        grep -q '^ *set(CMAKE_CXX_STANDARD 14)' "$src/$f" \
            || die "$f in $HVD_SDIST has no 'set(CMAKE_CXX_STANDARD 14)' line; the patch no longer applies"
        sed -i 's/^\( *\)set(CMAKE_CXX_STANDARD 14)/\1set(CMAKE_CXX_STANDARD 17)/' "$src/$f"
        grep -q '^ *set(CMAKE_CXX_STANDARD 17)' "$src/$f" || die "patching $f to C++17 failed"
    done
}

build_wheel() {
    check_build_tools
    if [[ "$FLAVOUR" != cpu ]]; then  # 'if': set -e is off in a function called after ||
        setup_cuda
    fi
    fetch_sdist
    tar -xzf "$CACHE/$HVD_SDIST" -C "$WORK"
    patch_sources "$WORK/horovod-$HVD_VERSION"
    say "building horovod $WANT_VERSION ($FLAVOUR, cmake $CMAKE_BIN; takes minutes; log: $LOG)"
    local t0=$SECONDS
    (
        cd "$WORK/horovod-$HVD_VERSION"
        export HOROVOD_WITH_PYTORCH=1 HOROVOD_WITHOUT_TENSORFLOW=1 HOROVOD_WITHOUT_MXNET=1 \
            HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 HOROVOD_CPU_OPERATIONS=gloo \
            HOROVOD_CMAKE="$CMAKE_BIN" HOROVOD_LOCAL_VERSION="$LOCAL" MAKEFLAGS="${MAKEFLAGS:--j2}"
        # -v: the CMake and compiler output goes to the log too.
        logged "pip wheel" pip_ wheel -v --no-build-isolation --no-deps -w "$WORK/wheel" .
    )
    local whl
    whl="$(compgen -G "$WORK/wheel/horovod-*.whl" | head -n1 || true)"
    [[ -n "$whl" ]] || die "pip wheel finished but left no horovod wheel in $WORK/wheel; log: $LOG"
    # Into the cache in one rename, so a concurrent reader never sees half a wheel.
    cp "$whl" "$CACHE/.tmp.$(basename "$whl")"
    mv "$CACHE/.tmp.$(basename "$whl")" "$CACHE/$(basename "$whl")"
    say "built $(basename "$whl") in $((SECONDS - t0)) s"
}

# Prints the cached wheel for this key, or nothing.
cached_wheel() {
    local f
    for f in "$CACHE"/horovod-"$WANT_VERSION"-"$PYTAG"-*.whl; do
        [[ -f "$f" ]] && { printf '%s\n' "$f"; return 0; }
    done
    return 0
}

verify() {
    local check='import horovod.torch as hvd; hvd.init(); assert hvd.gloo_built(), "gloo not built"'
    [[ "$FLAVOUR" == cpu ]] || check+='; assert hvd.nccl_built(), "NCCL not built"'
    logged "verify horovod.torch" "$PY" -c "$check"
    logged "verify horovod.spark" "$PY" -c 'import horovod.spark'
}

main() {
    mkdir -p "$CACHE"
    : >"$LOG"
    read_torch
    if installed_ok; then
        say "horovod $WANT_VERSION already installed in $VENV"
        return 0
    fi
    local t0=$SECONDS whl
    # Runtime deps first: the build's setup_requires and the cached-wheel path both need them.
    logged "pip install horovod's dependencies" pip_ install --progress-bar off "${HVD_DEPS[@]}"
    whl="$(cached_wheel)"
    if [[ -z "$whl" ]]; then
        WORK="$(mktemp -d "${TMPDIR:-/tmp}/build_horovod.XXXXXX")"
        trap 'rm -rf "$WORK"' EXIT
        build_wheel
        whl="$(cached_wheel)"
        [[ -n "$whl" ]] || die "the built wheel is not named horovod-$WANT_VERSION-$PYTAG-*.whl; see $CACHE"
    else
        say "installing cached $(basename "$whl")"
    fi
    # --force-reinstall: an installed horovod of the same version whose extension fails to import.
    logged "pip install horovod wheel" pip_ install --progress-bar off --no-deps --force-reinstall "$whl"
    verify
    say "horovod $WANT_VERSION installed in $VENV ($((SECONDS - t0)) s)"
}

# One build at a time per checkout. Not setup.sh's lock: setup.sh holds that one while it calls us.
mkdir -p "$ROOT/.cache"
if command -v flock >/dev/null 2>&1; then
    exec 8>"$ROOT/.cache/horovod.lock"
    flock 8
fi
main "$@"
