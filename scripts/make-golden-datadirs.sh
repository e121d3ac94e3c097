#!/usr/bin/env bash
# Golden data directories: a hub data dir and device store dirs written by the binaries of one
# commit (default f030e4f), for `integration-tests/tests/golden_datadirs.rs`, which loads them
# with the current hub and SDK.
#
#   scripts/make-golden-datadirs.sh [COMMIT]
#
# 1. A detached git worktree of COMMIT outside the repository (removed at the end).
# 2. That commit's `voltlane-hub`, `voltlane` (CLI) and the SDK's `car_pays_charger` example,
#    built there. Intermediate artifacts (dependencies) live in this workspace's target dir
#    (`build.build-dir`), the final binaries in a temporary dir, so the current binaries in
#    `target/debug/` are never overwritten by old ones; the old workspace's packages get a
#    distinct version (`0.1.0-golden`) so that none of their artifacts or fingerprints
#    collide with the current tree's.
# 3. A scenario driven only through those old binaries' public interfaces (the hub's gRPC via
#    the CLI and the example), on an embedded ledger:
#      - car_pays_charger: the car pays the charger 2 mediated payments (locks, secrets,
#        unlocks; the hub's proofs reach the charger);
#      - the CLI: the car tops up its deposit, the operator mints and deposits into the car's
#        channel, the car and the charger pay the hub directly;
#      - car_pays_charger with the roles swapped: the charger pays the car 1 mediated payment
#        (the hub's proofs reach the car too);
#      - a third device (meter) opens a channel and pays the hub directly (CLI only);
#      - the hub pays each device directly (`Payments.OperatorPay`, through a small caller
#        built from that commit's test harness, since the CLI has no such command) and each
#        device picks the proofs up (CLI `export-proofs` until it holds them);
#      - everything is read back through the CLI (hub view of each channel with the operator
#        key, ledger records, the devices' latest proofs both ways);
#      - kill -9 of the hub; restart with the fail point `after_forward_durable` (the hub's own
#        test switch: it aborts once the payer's lock and its forward are durable, before the
#        forward is sent) and car_pays_charger pays one more session: the hub dies with the
#        car's lock pending and its forward toward the charger unsent; the example is killed
#        with -9 (the car's lock proof stays unacknowledged in its store, the charger's
#        payment request stays open);
#      - restart of the hub (no fail point, devices offline), the hub's view read back through
#        the CLI, and a final kill -9.
#    The hub runs with a settlement window of 100 years, so the pending lock (its expiry is
#    bounded by the window) is still pending whenever the fixture is loaded.
# 4. Copies the hub data dir and the three device stores into
#    integration-tests/tests/fixtures/golden/<COMMIT>/ with a manifest.json built from what
#    the old binaries printed (their JSON output and logs are kept in reported/).
#
# GOLDEN_KEEP=1 keeps the temporary dir (binaries, run dirs, logs) for a look afterwards.
# Needs git, cargo, jq and python3. Takes a few minutes when the dependencies are built.
set -euo pipefail

COMMIT="${1:-f030e4f}"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SHORT="$(git -C "$REPO" rev-parse --short=7 "$COMMIT")"
DEST="$REPO/integration-tests/tests/fixtures/golden/$SHORT"
# The workspace's target dir (where its dependencies are built already); the old commit's
# intermediate artifacts go there too, under other hashes.
BUILD_DIR="$( (cargo metadata --manifest-path "$REPO/Cargo.toml" --format-version 1 --no-deps \
    2>/dev/null || true) | jq -r '.target_directory // empty')"
[ -n "$BUILD_DIR" ] || BUILD_DIR="$REPO/target"
WORK="$(mktemp -d /tmp/voltlane-golden-XXXXXX)"
SRC="$WORK/src"
OUT="$WORK/out"
RUN="$WORK/run"
REPORTED="$RUN/reported"
HUB_PID=""
EX_PID=""

log() { printf '[golden] %s\n' "$*" >&2; }

cleanup() {
    set +e
    [ -n "$EX_PID" ] && kill -9 "$EX_PID" 2>/dev/null
    [ -n "$HUB_PID" ] && kill -9 "$HUB_PID" 2>/dev/null
    git -C "$REPO" worktree remove --force "$SRC" >/dev/null 2>&1
    git -C "$REPO" worktree prune >/dev/null 2>&1
    if [ -n "${GOLDEN_KEEP:-}" ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# ----- 1. worktree and build -----
log "worktree of $COMMIT in $SRC"
git -C "$REPO" worktree add --detach "$SRC" "$COMMIT" >/dev/null
# Cargo names a workspace member's artifacts and fingerprints by package name, version and
# path relative to the workspace root, so the old commit's crates would land on the very
# files the current tree's builds use in the shared build dir (and the current tree would
# then take the old artifacts for fresh). A distinct version keeps them apart; registry
# dependencies stay shared. (It only changes what `--version` prints.)
sed -i '0,/^version = "\([^"]*\)"$/s//version = "\1-golden"/' "$SRC/Cargo.toml"
grep -q '^version = ".*-golden"$' "$SRC/Cargo.toml" \
    || { log "cannot give the old workspace a distinct version"; exit 1; }
# The old CLI has no command for `Payments.OperatorPay` (the hub paying a device directly, the
# only way a device gets plain hub payments): a ten-line gRPC caller built in the worktree
# only, from that commit's own test harness (`integration_tests::Operator`, which speaks the
# public API), stands in for it.
mkdir -p "$SRC/integration-tests/examples"
cat >"$SRC/integration-tests/examples/golden_operator_pay.rs" <<'RS'
//! `golden_operator_pay URL OPERATOR_KEY_FILE CHANNEL_ID AMOUNT`: Payments.OperatorPay, as JSON.
use channel_core::crypto::LocalSigner;
use channel_core::primitives::{decode_hex, U256};
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().collect();
    let key = LocalSigner::from_bytes(&decode_hex(std::fs::read_to_string(&a[2])?.trim())?)?;
    let op = integration_tests::Operator::login(integration_tests::process::connect(&a[1]).await?, key).await?;
    let p = op.pay(U256::from_str_radix(&a[3], 10)?, U256::from_str_radix(&a[4], 10)?).await?;
    println!("{{\"channel_id\":\"{}\",\"amount\":\"{}\",\"nonce\":{},\"transferred_amount\":\"{}\"}}",
        a[3], a[4], p.proof.nonce, p.proof.balance.transferred_amount);
    Ok(())
}
RS
log "building the old binaries (build dir $BUILD_DIR, binaries in $OUT)"
(
    cd "$SRC"
    # --offline, not --locked: the lock file takes the new versions of the path packages.
    CARGO_BUILD_BUILD_DIR="$BUILD_DIR" CARGO_TARGET_DIR="$OUT" cargo build --offline \
        -p voltlane-hub --bin voltlane-hub \
        -p voltlane-cli --bin voltlane \
        -p voltlane-client --example car_pays_charger \
        -p integration-tests --example golden_operator_pay
)
HUB_BIN="$OUT/debug/voltlane-hub"
CLI_BIN="$OUT/debug/voltlane"
EX_BIN="$OUT/debug/examples/car_pays_charger"
OPPAY_BIN="$OUT/debug/examples/golden_operator_pay"
for b in "$HUB_BIN" "$CLI_BIN" "$EX_BIN" "$OPPAY_BIN"; do
    [ -x "$b" ] || { log "missing $b"; exit 1; }
done

# ----- 2. the scenario -----
mkdir -p "$RUN" "$REPORTED"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
HUB_URL="http://127.0.0.1:$PORT"
SETTLEMENT_WINDOW=3153600000
HUB_FLAGS=(--data-dir "$RUN/hub" --listen "127.0.0.1:$PORT"
    --settlement-window-secs "$SETTLEMENT_WINDOW"
    --auto-deposit 1000000 --mediation-fee-flat 1 --mediation-fee-ppm 10000
    --store-cache-mb 8)
OP_KEY="$RUN/hub/operator.key"

cli() { VOLTLANE_TIMEOUT_SECS="${CLI_TIMEOUT:-20}" "$CLI_BIN" --hub "$HUB_URL" "$@"; }

start_hub() { # [env assignments...]
    log "starting the hub $* on $HUB_URL"
    env NO_COLOR=1 RUST_LOG="info,voltlane_hub=debug" "$@" "$HUB_BIN" "${HUB_FLAGS[@]}" \
        >>"$REPORTED/hub.log" 2>&1 &
    HUB_PID=$!
    for _ in $(seq 1 200); do
        if CLI_TIMEOUT=2 cli info >/dev/null 2>&1; then return 0; fi
        kill -0 "$HUB_PID" 2>/dev/null || { log "hub died at start"; tail -20 "$REPORTED/hub.log"; exit 1; }
        sleep 0.1
    done
    log "hub not serving"; tail -20 "$REPORTED/hub.log"; CLI_TIMEOUT=2 cli info; exit 1
}

kill9_hub() {
    log "kill -9 of the hub ($HUB_PID)"
    kill -9 "$HUB_PID"
    wait "$HUB_PID" 2>/dev/null || true
    HUB_PID=""
}

example() { # name args...
    local name="$1"; shift
    log "car_pays_charger ($name): $*"
    NO_COLOR=1 RUST_LOG="warn,voltlane_client=info" "$EX_BIN" --hub "$HUB_URL" "$@" \
        >"$REPORTED/example-$name.out" 2>&1
}

# A record of every CLI call the manifest uses: reported/<name>.json.
report() { # name args...
    local name="$1"; shift
    cli --json "$@" >"$REPORTED/$name.json"
}

start_hub

# Mediated payments car -> charger: channels open (the hub matches the deposits), 2 sessions.
example car-pays-charger --car-store "$RUN/car" --charger-store "$RUN/charger" \
    --sessions 2 --price 250

# Direct payments to the hub; the car tops its deposit up first, and the hub (the operator
# mints its own test tokens) deposits into the car's channel: capacity to pay the car.
report car-mint --store "$RUN/car" mint 1000
report car-open --store "$RUN/car" open 1500
report hub-mint --key "$OP_KEY" mint 10000
report hub-deposit --key "$OP_KEY" deposit "$(jq -r .channel_id "$REPORTED/car-open.json")" 1000
for a in 7 11 13; do report "car-pay-$a" --store "$RUN/car" pay "$a"; done
for a in 5 9; do report "charger-pay-$a" --store "$RUN/charger" pay "$a"; done

# Mediated payment charger -> car (the example with the roles swapped).
example charger-pays-car --car-store "$RUN/charger" --charger-store "$RUN/car" \
    --sessions 1 --price 100

# A third device, direct payments only.
report meter-mint --store "$RUN/meter" mint 300
report meter-open --store "$RUN/meter" open 200
for a in 1 2 3; do report "meter-pay-$a" --store "$RUN/meter" pay "$a"; done
report car-pay-17 --store "$RUN/car" pay 17

# The hub pays each device directly (OperatorPay); each device picks the proofs up on its
# payment stream the next time the SDK connects (export-proofs, until it holds them).
operator_pay() { # name channel amount
    "$OPPAY_BIN" "$HUB_URL" "$OP_KEY" "$2" "$3" >"$REPORTED/$1.json"
}
CAR_CH="$(jq -r .channel_id "$REPORTED/car-open.json")"
CHARGER_CH="$(jq -r .channel_id "$REPORTED/charger-pay-5.json")"
METER_CH="$(jq -r .channel_id "$REPORTED/meter-open.json")"
operator_pay hub-pays-car-3 "$CAR_CH" 3
operator_pay hub-pays-car-4 "$CAR_CH" 4
operator_pay hub-pays-charger-2 "$CHARGER_CH" 2
operator_pay hub-pays-meter-5 "$METER_CH" 5
for pair in car:hub-pays-car-4 charger:hub-pays-charger-2 meter:hub-pays-meter-5; do
    dev="${pair%%:*}"; want="$(jq .nonce "$REPORTED/${pair#*:}.json")"
    for _ in $(seq 1 30); do
        got="$(cli --json --store "$RUN/$dev" export-proofs | jq -r '.hub_to_device.nonce // "0"')"
        [ "$got" = "$want" ] && break
        sleep 0.2
    done
    [ "$got" = "$want" ] || { log "$dev never received the hub's proof $want (holds $got)"; exit 1; }
done

# What the old binaries say before the crash.
report info info
report channels-before --key "$OP_KEY" channels list
for id in $(jq -r '.channels[].channel_id' "$REPORTED/channels-before.json"); do
    report "show-before-$id" --key "$OP_KEY" channels show "$id"
done
for dev in car charger meter; do
    report "login-$dev" --store "$RUN/$dev" login
    report "proofs-$dev" --store "$RUN/$dev" export-proofs
done

# A real crash, then one more mediated payment the hub dies in the middle of.
kill9_hub
start_hub VOLTLANE_FAILPOINTS=after_forward_durable
log "car_pays_charger (pending): the hub aborts once the lock and its forward are durable"
NO_COLOR=1 RUST_LOG="warn,voltlane_client=info" "$EX_BIN" --hub "$HUB_URL" \
    --car-store "$RUN/car" --charger-store "$RUN/charger" --sessions 1 --price 40 \
    >"$REPORTED/example-pending.out" 2>&1 &
EX_PID=$!
for _ in $(seq 1 600); do
    kill -0 "$HUB_PID" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "$HUB_PID" 2>/dev/null; then log "the fail point was not hit"; exit 1; fi
wait "$HUB_PID" 2>/dev/null || true
HUB_PID=""
grep -q "fail point after_forward_durable hit" "$REPORTED/hub.log" \
    || { log "the hub died, but not at the fail point"; exit 1; }
sleep 0.5
log "kill -9 of the example ($EX_PID)"
kill -9 "$EX_PID" 2>/dev/null || true
wait "$EX_PID" 2>/dev/null || true
EX_PID=""

# The hub after the crash (devices offline), read back, then the final crash.
start_hub
report channels-after --key "$OP_KEY" channels list
for id in $(jq -r '.channels[].channel_id' "$REPORTED/channels-after.json"); do
    report "show-after-$id" --key "$OP_KEY" channels show "$id"
    report "ledger-$id" --key "$OP_KEY" ledger show "$id"
done
sleep 1
kill9_hub

# ----- 3. the fixture -----
log "fixture in $DEST"
rm -rf "$DEST"
mkdir -p "$DEST"
cp -a "$RUN/hub" "$DEST/hub"
for dev in car charger meter; do cp -a "$RUN/$dev" "$DEST/$dev"; done
cp -a "$REPORTED" "$DEST/reported"

python3 - "$DEST" "$COMMIT" "$SHORT" "$SETTLEMENT_WINDOW" <<'PY'
import json, pathlib, re, sys

dest, commit, short, window = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
rep = dest / "reported"
load = lambda name: json.loads((rep / f"{name}.json").read_text())

info = load("info")
devices = {d: load(f"login-{d}")["address"].lower() for d in ("car", "charger", "meter")}
by_address = {a: d for d, a in devices.items()}

channels = []
for entry in load("channels-after")["channels"]:
    cid = entry["channel_id"]
    after = load(f"show-after-{cid}")
    before = load(f"show-before-{cid}")
    ledger = load(f"ledger-{cid}")
    device = after["device"].lower()
    channels.append({
        "channel_id": cid,
        "device": after["device"],
        "device_store": by_address.get(device),
        "phase": after["phase"],
        # The hub's view after the last restart (what a later build must show).
        "hub_view": {k: after[k] for k in (
            "device_deposit", "hub_deposit", "device_withdraw", "hub_withdraw",
            "device_balance", "hub_balance", "device_capacity", "hub_capacity",
            "device_nonce", "device_transferred", "hub_nonce", "hub_transferred")},
        # The same view before the pending payment (for the record).
        "hub_view_before_pending": {k: before[k] for k in (
            "device_balance", "hub_balance", "device_capacity", "hub_capacity",
            "device_nonce", "device_transferred", "hub_nonce", "hub_transferred")},
        "ledger": ledger,
    })

# Completed mediated payments, from the examples' output: the car's receipt (session, amount
# paid, fee, secret) and the payee SDK's log line (secrethash, amount).
ansi = re.compile(r"\x1b\[[0-9;]*m")
def mediated(name, payer, payee):
    text = ansi.sub("", (rep / f"example-{name}.out").read_text())
    done = []
    for m in re.finditer(r"session (\d+): car paid (\d+) \(fee (\d+)\) \| charger received (\d+) "
                         r"from (0x[0-9a-fA-F]{40}) \(unlock nonce (\d+)\) \| proof of payment: "
                         r"secret (0x[0-9a-fA-F]{64})", text):
        done.append({"payer": payer, "payee": payee, "payment_id": int(m[1]),
                     "lock_amount": m[2], "fee": m[3], "amount": m[4],
                     "payee_unlock_nonce": int(m[6]), "secret": m[7]})
    hashes = re.findall(r"mediated payment received secrethash=(0x[0-9a-fA-F]{64}) amount=(\d+)", text)
    for d, (h, amount) in zip(done, hashes):
        assert amount == d["amount"], (amount, d)
        d["secrethash"] = h
    return done

completed = mediated("car-pays-charger", "car", "charger") + mediated("charger-pays-car", "charger", "car")

view = {c["device_store"]: c for c in channels}
car, charger = view["car"]["hub_view"], view["charger"]["hub_view"]
car_before, charger_before = view["car"]["hub_view_before_pending"], view["charger"]["hub_view_before_pending"]
pending = [{
    "payer": "car", "payee": "charger", "payment_id": 1, "amount": "40",
    "how": "hub aborted at fail point after_forward_durable, then the example was killed -9",
    # The car's lock proof as the hub holds it (the car never got its ack).
    "payer_lock_nonce": car["device_nonce"],
    "payer_channel_id": view["car"]["channel_id"],
    # The hub's forward toward the charger (signed and durable, never sent).
    "hub_forward_nonce": charger["hub_nonce"],
    "payee_channel_id": view["charger"]["channel_id"],
    # No old binary prints a pending lock's secrethash; the test takes it from the car's
    # unacknowledged lock and checks the charger's request, the car's transfer record and the
    # hub's locksroots agree on it.
    "secrethash": None,
}]
assert car["device_nonce"] == car_before["device_nonce"] + 1, (car, car_before)
assert charger["hub_nonce"] == charger_before["hub_nonce"] + 1, (charger, charger_before)

device_reports = {}
for d in devices:
    proofs = load(f"proofs-{d}")
    device_reports[d] = {
        "address": devices[d],
        "store": d,
        # Latest proofs both ways as the device exported them before the pending payment.
        "proofs_before_pending": proofs,
    }

manifest = {
    "commit": commit,
    "short": short,
    "generated_by": "scripts/make-golden-datadirs.sh",
    "hub": {
        "data_dir": "hub",
        "address": info.get("address") or info.get("hub_address"),
        "info": info,
        "flags": ["--settlement-window-secs", str(window), "--auto-deposit", "1000000",
                  "--mediation-fee-flat", "1", "--mediation-fee-ppm", "10000"],
        "ended_with": "kill -9",
    },
    "devices": device_reports,
    "channels": channels,
    "mediated_completed": completed,
    "pending": pending,
    "hub_payments": {
        d: [load(p.stem) for p in sorted(rep.glob(f"hub-pays-{d}-*.json"), key=lambda p: load(p.stem)["nonce"])]
        for d in devices
    },
    "direct_payments": {
        d: [load(p.stem) for p in sorted(rep.glob(f"{d}-pay-*.json"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))]
        for d in devices
    },
}
(dest / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
PY

log "fixture size: $(du -sh "$DEST" | cut -f1)"
du -ab "$DEST" | sort -n | tail -5 >&2
