#!/usr/bin/env bash
# Dependency rules: the code map's "must not depend on" column
# (ARCHITECTURE.md), one row per crate, checked against the real
# dependency tree (`cargo tree`, normal edges, every feature on).
# A broken rule prints the rule and the path that breaks it, and fails.
set -euo pipefail
cd "$(dirname "$0")/.."

# (clap is not listed for the controller: openraft 0.9 itself depends on it.)
# crate                  forbidden crates (extended regex on the crate name)
rules=$(cat <<'RULES'
guardian-proto          ^(rocksdb|librocksdb-sys|openraft|guardian-.*)$
guardian-planner        ^(tokio|tonic|hyper|rocksdb|librocksdb-sys|openraft|rdkafka|rdkafka-sys|guardian-.*)$
guardian-meta-store     ^(guardian-planner|guardian-controller|guardian-cli|guardian-kafka|rdkafka|rdkafka-sys)$
guardian-reporter       ^(rocksdb|librocksdb-sys|openraft|guardian-meta-store|guardian-controller|guardian-planner|guardian-cli)$
guardian-kafka          ^(rocksdb|librocksdb-sys|openraft|guardian-meta-store|guardian-planner|guardian-controller|guardian-cli|tonic)$
guardian-consumer       ^(rocksdb|librocksdb-sys|openraft|guardian-meta-store|guardian-controller|guardian-cli|guardian-planner|guardian-kafka|guardian-sim)$
guardian-sim            ^(rocksdb|librocksdb-sys|openraft|guardian-meta-store|guardian-controller|guardian-cli|rdkafka|rdkafka-sys)$
guardian-controller     ^(comfy-table|mimalloc|libmimalloc-sys|guardian-cli|guardian-tests)$
guardian-cli            ^(guardian-tests)$
RULES
)

# Every workspace member must have a row: a new crate gets its rules first.
members=$(cargo metadata --format-version 1 --no-deps \
  | python3 -c 'import json,sys; print("\n".join(sorted(p["name"] for p in json.load(sys.stdin)["packages"])))')
failed=0
for m in $members; do
  [ "$m" = guardian-tests ] && continue # the harness may use everything
  if ! grep -q "^$m " <<<"$rules"; then
    echo "dependency rules: crate $m has no row in .ci/deps.sh" >&2
    failed=1
  fi
done

while read -r crate forbidden; do
  [ -z "$crate" ] && continue
  deps=$(cargo tree -p "$crate" -e normal --all-features --prefix none --format '{p}' \
    | awk '{print $1}' | sort -u)
  for d in $(grep -E "$forbidden" <<<"$deps" | grep -vx "$crate" || true); do
    echo "dependency rule broken: $crate must not depend on $d; the path:" >&2
    cargo tree -p "$crate" -e normal --all-features -i "$d" 2>&1 | head -20 >&2 || true
    failed=1
  done
done <<<"$rules"
exit "$failed"
