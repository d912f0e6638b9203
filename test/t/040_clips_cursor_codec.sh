#!/usr/bin/env bash
# test/t/040_clips_cursor_codec.sh -- the dd_clips_page cursor codec on its
# own, without PostgreSQL: compiles test/codec/cursor_codec_test.c with
# src/cursor_codec.c (warnings are errors) into tmp_check/ and runs it; it
# prints TAP (round trips, every one-character change refused, ...).
set -u
out=$DD_ROOT/tmp_check/cursor_codec_test
mkdir -p "$DD_ROOT/tmp_check"
if ! cc -std=c99 -O1 -Wall -Wextra -Werror -I"$DD_ROOT/src" \
        "$DD_ROOT/test/codec/cursor_codec_test.c" "$DD_ROOT/src/cursor_codec.c" \
        -o "$out"; then
    echo "1..1"
    echo "not ok 1 - the codec test compiles"
    exit 1
fi
exec "$out"
