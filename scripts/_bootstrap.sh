# shellcheck shell=bash
# Sourced by scripts/*: make the machine ready to run tunstack, fast when it already is.
#
#  * root check (TUN devices and network namespaces need it)
#  * system tools the scripts and tests use, via apt-get, only when missing
#    (apt-get update runs once, and only if something must be installed)
#  * .venv with `pip install -e '.[test,plot]'`, redone only when pyproject.toml changed
#    (its sha256 is kept in .venv/.tunstack-pyproject.sha256)
#
# Sets TUNSTACK_ROOT (the repository) and TUNSTACK_PY (.venv's python).

TUNSTACK_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TUNSTACK_PY="$TUNSTACK_ROOT/.venv/bin/python"

if [[ "$(id -u)" -ne 0 ]]; then
    echo "tunstack: must run as root (TUN devices and network namespaces need it); try: sudo $0" >&2
    exit 1
fi

_tunstack_apt_install() {  # apt-get install PKG..., with one `apt-get update` first
    if ! command -v apt-get >/dev/null; then
        echo "tunstack: missing $*, and no apt-get to install it: install it by hand" >&2
        exit 1
    fi
    echo "tunstack: installing $* with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    if [[ -z "${_TUNSTACK_APT_UPDATED:-}" ]]; then
        apt-get update -qq >&2 || { echo "tunstack: apt-get update failed" >&2; exit 1; }
        _TUNSTACK_APT_UPDATED=1
    fi
    apt-get install -y -qq --no-install-recommends "$@" >&2 \
        || { echo "tunstack: apt-get install $* failed" >&2; exit 1; }
}

_tunstack_system_tools() {  # command:package pairs; install the missing ones together
    local pair missing=()
    for pair in ping:iputils-ping nft:nftables tcpdump:tcpdump curl:curl ip:iproute2 \
                unshare:util-linux flock:util-linux sha256sum:coreutils python3:python3; do
        command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
    done
    # `python3 -m venv` needs ensurepip, which Debian ships apart in python3-venv
    if command -v python3 >/dev/null && ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
        missing+=(python3-venv)
    fi
    # a CJK font for plots with Chinese labels (tunstack plot --lang zh, the Chinese labs' pictures): 1.6 MB
    if ! compgen -G "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc" >/dev/null \
       && ! compgen -G "/usr/share/fonts/opentype/noto/NotoSansCJK*" >/dev/null; then
        missing+=(fonts-wqy-microhei)
    fi
    if ((${#missing[@]})); then
        # shellcheck disable=SC2207
        missing=($(printf '%s\n' "${missing[@]}" | sort -u))
        _tunstack_apt_install "${missing[@]}"
    fi
}

_tunstack_venv() {  # create .venv / reinstall the project when pyproject.toml changed
    local stamp="$TUNSTACK_ROOT/.venv/.tunstack-pyproject.sha256" want
    want="$(sha256sum "$TUNSTACK_ROOT/pyproject.toml" | cut -d' ' -f1)"
    if [[ -x "$TUNSTACK_PY" && -f "$stamp" && "$(<"$stamp")" == "$want" ]]; then
        return 0  # fast path: nothing to do
    fi
    mkdir -p "$TUNSTACK_ROOT/.venv"
    (   # one installer at a time: scripts may start together
        flock 9
        if [[ -x "$TUNSTACK_PY" && -f "$stamp" && "$(<"$stamp")" == "$want" ]]; then
            exit 0  # another script finished the job while we waited
        fi
        if [[ ! -x "$TUNSTACK_PY" ]]; then
            echo "tunstack: creating .venv" >&2
            python3 -m venv "$TUNSTACK_ROOT/.venv" >&2 \
                || { echo "tunstack: python3 -m venv failed" >&2; exit 1; }
        fi
        echo "tunstack: pip install -e '.[test,plot]' (pyproject.toml changed or new .venv)" >&2
        rm -f "$stamp"
        (cd "$TUNSTACK_ROOT" && "$TUNSTACK_PY" -m pip install -q --disable-pip-version-check \
            -e '.[test,plot]') >&2 || { echo "tunstack: pip install failed" >&2; exit 1; }
        echo "$want" >"$stamp"
    ) 9>"$TUNSTACK_ROOT/.venv/.tunstack-bootstrap.lock" || exit 1
}

_tunstack_system_tools
_tunstack_venv
