#!/usr/bin/env bash
# Make everything docker-compose.yml mounts, for the three example parties:
#
#   secrets/<party>.passphrase, secrets/anchor.passphrase   key passphrases (one per party)
#   secrets/<party>.token                                   each back office's API token
#   keys/anchor/        the trust anchor's key pair (production: offline, at the programme office)
#   keys/<party>/       each party's signing + encryption keys and public record
#   public/             the parties' public records, collected for the directory
#   directory.bin       the key directory, signed by the anchor (network "lvv", 30 days)
#   pki/                a CA, the brokers' and admin's certificates, one client certificate per party
#
# usage: deploy/compose/prepare.sh [OUT]       (OUT defaults to deploy/compose/)
# Needs `lvvx` (make install; or set LVVX=...). Refuses to overwrite an existing network.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
OUT="${1:-$HERE}"
LVVX="${LVVX:-$HERE/../../.venv/bin/lvvx}"
# party id : role : KEM (`lvvx keys init --kem`) : display name
PARTIES=(
  "gemeente-utrecht:MUNICIPALITY:x25519:Gemeente Utrecht"
  "ind:IND:hybrid:Immigratie- en Naturalisatiedienst"
  "dtv:DTV:hybrid:Dienst Terugkeer en Vertrek"
)

say() { printf 'prepare.sh: %s\n' "$*"; }
die() { printf 'prepare.sh: error: %s\n' "$*" >&2; exit 1; }

[[ -x "$LVVX" ]] || die "no lvvx at $LVVX (run \`make install\`, or set LVVX)"
for f in keys pki directory.bin; do
  [[ ! -e "$OUT/$f" ]] || die "$OUT/$f exists; remove keys/ public/ secrets/ pki/ directory.bin to start over"
done

new_secret() { # FILE: 32 random bytes, base64url, mode 0600
  (umask 077 && head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n' >"$1")
}

mkdir -p "$OUT/secrets" "$OUT/keys" "$OUT/public"
chmod 700 "$OUT/secrets"

say "trust anchor -> keys/anchor/"
new_secret "$OUT/secrets/anchor.passphrase"
LVVX_KEY_PASSPHRASE_FILE="$OUT/secrets/anchor.passphrase" "$LVVX" keys anchor --out "$OUT/keys/anchor" >/dev/null

for entry in "${PARTIES[@]}"; do
  IFS=: read -r party role kem name <<<"$entry"
  say "$party ($role, $kem) -> keys/$party/, secrets/$party.{passphrase,token}"
  new_secret "$OUT/secrets/$party.passphrase"
  new_secret "$OUT/secrets/$party.token"
  LVVX_KEY_PASSPHRASE_FILE="$OUT/secrets/$party.passphrase" \
    "$LVVX" keys init --party "$party" --role "$role" --kem "$kem" --name "$name" --out "$OUT/keys/$party" >/dev/null
  cp "$OUT/keys/$party/$party.public.json" "$OUT/public/"
done

say "directory.bin (signed by the anchor)"
LVVX_KEY_PASSPHRASE_FILE="$OUT/secrets/anchor.passphrase" \
  "$LVVX" directory build --keys "$OUT/public" --anchor "$OUT/keys/anchor" --network lvv --out "$OUT/directory.bin" >/dev/null
"$LVVX" directory verify "$OUT/directory.bin" --anchor "$OUT/keys/anchor" >/dev/null

say "pki/ (CA, broker, admin, one client certificate per party of the directory)"
"$LVVX" pki init --out "$OUT/pki" --directory "$OUT/directory.bin" --anchor "$OUT/keys/anchor" >/dev/null

say "done. Containers read these files as uid 1000 (Kafka's appuser; lvvx's LVVX_UID, default 1000):"
say "your uid is $(id -u); see README.md, 'File ownership', if that differs"
