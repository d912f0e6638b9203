#!/usr/bin/env bash
# scripts/fuzz.sh -- fuzz the plain-C codecs with libFuzzer, no server.
#
#   bash scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Builds each target in test/fuzz/*_fuzz.c (key_codec, cursor_codec,
# claim_codec) with Debian's clang, -fsanitize=fuzzer,address,undefined
# (any undefined behaviour is a crash), into tmp_check/fuzz/, and runs it
# for SECONDS (default 300) on a corpus kept in tmp_check/fuzz/corpus/
# TARGET/, seeded by test/fuzz/seeds.c.  A crash leaves its input in
# tmp_check/fuzz/artifacts/ (rerun: tmp_check/fuzz/TARGET FILE).  Prints,
# per target, one line
#   TARGET: N executions in S s, C crashes, corpus K files (B bytes)
# and exits non-zero if any target crashed.  test/t/077_fuzz.sh runs it
# for a few seconds per target; the README gives the long run.
set -uo pipefail

source "$(dirname "$0")/lib.sh"
cd "$DD_ROOT"

seconds=${1:-300}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    for f in test/fuzz/*_fuzz.c; do
        t=${f##*/}
        targets+=("${t%_fuzz.c}")
    done
fi

dd_apt_install clang libclang-rt-dev

out=$DD_ROOT/tmp_check/fuzz
mkdir -p "$out/artifacts"
cflags=(-g -O1 -fno-omit-frame-pointer -Wall -Wextra -Werror -I"$DD_ROOT/src")
san=(-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all)

clang "${cflags[@]}" -o "$out/seeds" test/fuzz/seeds.c src/key_codec.c \
    src/cursor_codec.c src/claim_codec.c || dd_die "test/fuzz/seeds.c does not build"
mkdir -p "$out/seeds.d/key_codec" "$out/seeds.d/cursor_codec" "$out/seeds.d/claim_codec"
"$out/seeds" "$out/seeds.d" || dd_die "writing the seeds failed"

crashed=0
for t in "${targets[@]}"; do
    src=src/$t.c
    [ -f "$src" ] && [ -f "test/fuzz/${t}_fuzz.c" ] || dd_die "no target $t"
    clang "${cflags[@]}" "${san[@]}" -o "$out/$t" "test/fuzz/${t}_fuzz.c" "$src" \
        || dd_die "test/fuzz/${t}_fuzz.c does not build"
    corpus=$out/corpus/$t
    mkdir -p "$corpus"
    before=$(find "$out/artifacts" -type f | wc -l)
    start=$(date +%s)
    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    "$out/$t" -max_total_time="$seconds" -print_final_stats=1 -timeout=10 \
        -rss_limit_mb=2048 -artifact_prefix="$out/artifacts/$t-" \
        "$corpus" "$out/seeds.d/$t" >"$out/$t.log" 2>&1
    rc=$?
    took=$(( $(date +%s) - start ))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/$t.log" | tail -1)
    crashes=$(( $(find "$out/artifacts" -type f | wc -l) - before ))
    [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ] && crashes=1
    files=$(find "$corpus" -type f | wc -l)
    bytes=$(du -sb "$corpus" | cut -f1)
    printf '%s: %s executions in %d s, %d crashes, corpus %d files (%s bytes)\n' \
        "$t" "${execs:-0}" "$took" "$crashes" "$files" "$bytes"
    if [ "$crashes" -ne 0 ]; then
        crashed=1
        grep -E 'ERROR|runtime error|SUMMARY|abort|deadly' "$out/$t.log" | head -10 | sed 's/^/    /'
    fi
done
exit "$crashed"
