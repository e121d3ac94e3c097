#!/usr/bin/env bash
# Dev chain for the Ethereum ledger backend: anvil (from npm) plus Raiden's TokenNetwork 0.50
# contracts (ABI + bytecode from the raiden-contracts wheel on PyPI). Nothing is committed; all
# of it lives under .devchain/ (git-ignored).
#
#   scripts/devchain.sh install   fetch anvil and contracts.json when missing
#   scripts/devchain.sh test      install, then test the eth-ledger crate (voltlane-eth, a workspace
#                                 member; extra arguments go to `cargo test`)
#   scripts/devchain.sh start     run anvil on 127.0.0.1:${DEVCHAIN_PORT:-8545}, deploy the
#                                 contracts, write .devchain/deployment.json (stays in foreground)
#   scripts/devchain.sh hub       as start, then run the hub on that chain (--ledger ethereum,
#                                 operator = funded dev key 1, data in .devchain/hub-data, reset
#                                 each time since anvil forgets its chain); extra arguments go to
#                                 voltlane-hub
set -euo pipefail
cd "$(dirname "$0")/.."

ANVIL_NPM_PACKAGE="@foundry-rs/anvil-linux-amd64"
ANVIL_NPM_VERSION="${ANVIL_NPM_VERSION:-1.7.1}"
RAIDEN_CONTRACTS_VERSION="0.50.2"
DIR=".devchain"

# Installs Debian packages (as root, or through passwordless sudo) for a missing tool.
apt_install() {
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo -n"; fi
    echo "devchain: installing $* with apt-get" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@"
}

install_anvil() {
    if [ -x "$DIR/bin/anvil" ]; then return 0; fi
    command -v npm >/dev/null 2>&1 || apt_install nodejs npm
    echo "devchain: installing anvil $ANVIL_NPM_VERSION from npm" >&2
    mkdir -p "$DIR/npm" "$DIR/bin"
    npm install --silent --no-audit --no-fund --prefix "$DIR/npm" \
        "$ANVIL_NPM_PACKAGE@$ANVIL_NPM_VERSION" >&2
    local found
    found="$(find "$DIR/npm/node_modules/$ANVIL_NPM_PACKAGE" -type f -name anvil | head -n 1)"
    if [ -z "$found" ]; then
        echo "devchain: no anvil binary inside $ANVIL_NPM_PACKAGE" >&2
        exit 1
    fi
    cp "$found" "$DIR/bin/anvil.tmp"
    chmod +x "$DIR/bin/anvil.tmp"
    mv "$DIR/bin/anvil.tmp" "$DIR/bin/anvil"
}

install_contracts() {
    if [ -s "$DIR/contracts.json" ]; then return 0; fi
    python3 -m pip --version >/dev/null 2>&1 || apt_install python3 python3-pip
    echo "devchain: fetching raiden-contracts $RAIDEN_CONTRACTS_VERSION from PyPI" >&2
    local tmp
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' RETURN
    python3 -m pip download --quiet --no-deps "raiden-contracts==$RAIDEN_CONTRACTS_VERSION" -d "$tmp" >&2
    mkdir -p "$DIR"
    python3 - "$tmp" "$DIR/contracts.json" <<'PY'
import glob, json, os, re, sys, zipfile
tmp, out = sys.argv[1], sys.argv[2]
wheels = glob.glob(tmp + "/raiden_contracts-*.whl")
if len(wheels) != 1:
    sys.exit("devchain: expected one raiden_contracts wheel, found %r" % wheels)
z = zipfile.ZipFile(wheels[0])
data = z.read("raiden_contracts/data/contracts.json")
doc = json.loads(data)
version = doc.get("contracts_version")
if version is None:
    # The 0.50.2 wheel leaves data/contracts.json unstamped; the same release carries the
    # stamped copy under data_0.50.*/. Accept only if both describe the same sources.
    stamped = [n for n in z.namelist() if re.fullmatch(r"raiden_contracts/data_0\.50\.\d+/contracts\.json", n)]
    for name in stamped:
        other = json.loads(z.read(name))
        if other.get("overall_checksum") == doc.get("overall_checksum"):
            version = other.get("contracts_version")
if not str(version).startswith("0.50."):
    sys.exit("devchain: contracts_version is %r, expected 0.50.x" % version)
for name in ("CustomToken", "SecretRegistry", "TokenNetwork"):
    entry = doc["contracts"][name]
    if not entry.get("abi") or not entry.get("bin"):
        sys.exit("devchain: %s lacks abi or bin" % name)
with open(out + ".tmp", "wb") as f:
    f.write(data)
os.replace(out + ".tmp", out)
PY
}

# Starts anvil in the background and deploys; sets ANVIL_PID and URL.
launch_chain() {
    install_anvil
    install_contracts
    local port="${DEVCHAIN_PORT:-8545}"
    URL="http://127.0.0.1:$port"
    "$DIR/bin/anvil" --host 127.0.0.1 --port "$port" --silent &
    ANVIL_PID=$!
    trap 'kill "$ANVIL_PID" 2>/dev/null || true' EXIT INT TERM
    cargo run --quiet -p voltlane-eth --bin voltlane-devchain -- deploy \
        --rpc-url "$URL" --contracts "$DIR/contracts.json" --out "$DIR/deployment.json"
}

start() {
    launch_chain
    echo "devchain: anvil on $URL, deployment in $DIR/deployment.json (Ctrl-C stops)" >&2
    wait "$ANVIL_PID"
}

hub() {
    launch_chain
    local fields
    fields="$(python3 - "$DIR/deployment.json" "$DIR/operator.key" <<'PY'
import json, os, sys
d = json.load(open(sys.argv[1]))
key = d["dev_keys"][1]["private_key"]
key = key[2:] if key.startswith("0x") else key
fd = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
os.write(fd, key.encode())
os.close(fd)
print(d["token_network"], d["deploy_block"])
PY
)"
    local token_network="${fields% *}" start_block="${fields#* }"
    rm -rf "$DIR/hub-data"
    echo "devchain: starting the hub on $URL (token network $token_network)" >&2
    cargo run --release --quiet -p voltlane-hub -- \
        --ledger ethereum --eth-rpc-url "$URL" --token-network "$token_network" \
        --eth-start-block "$start_block" --operator-key-file "$DIR/operator.key" \
        --data-dir "$DIR/hub-data" "$@"
}

case "${1:-}" in
    install) install_anvil; install_contracts ;;
    test)
        shift
        install_anvil
        install_contracts
        cargo test -p voltlane-eth --locked "$@"
        ;;
    start) start ;;
    hub) shift; hub "$@" ;;
    *) echo "usage: $0 install|test|start|hub" >&2; exit 2 ;;
esac
