#!/usr/bin/env bash
# test/t/077_fuzz.sh -- a bounded libFuzzer run of each plain-C codec (the
# API key, the page cursor, the row-security claim), no server: each target
# (test/fuzz/*_fuzz.c) is built with AddressSanitizer and
# UndefinedBehaviorSanitizer and run for DD_FUZZ_SECONDS (default 15) by
# scripts/fuzz.sh.  Passes when every target built, ran a meaningful number
# of inputs and crashed on none: no memory error, no undefined behaviour,
# and no broken round trip (an accepted text that is not the one canonical
# encoding, an encoding that does not decode back, a changed character
# accepted).  The long run is `bash scripts/fuzz.sh 300` (README, Fuzzing).
set -u
source "$DD_ROOT/test/lib/tap.bash"

targets=()
for f in "$DD_ROOT"/test/fuzz/*_fuzz.c; do
    t=${f##*/}
    targets+=("${t%_fuzz.c}")
done
plan $(( ${#targets[@]} * 2 ))

out=$(bash "$DD_ROOT/scripts/fuzz.sh" "${DD_FUZZ_SECONDS:-15}" "${targets[@]}" 2>&1)
printf '%s\n' "$out" | sed 's/^/# /'
for t in "${targets[@]}"; do
    line=$(printf '%s\n' "$out" | grep "^$t: ")
    execs=$(printf '%s' "$line" | sed -n 's/^[^:]*: \([0-9]*\) executions.*/\1/p')
    crashes=$(printf '%s' "$line" | sed -n 's/.* \([0-9]*\) crashes.*/\1/p')
    [ -n "$execs" ] && [ "$execs" -ge 10000 ]
    ok $? "$t: built and ran at least 10,000 inputs (${execs:-none})"
    is "${crashes:-none}" 0 "$t: no crash, no sanitizer report, no broken round trip"
done
done_testing
