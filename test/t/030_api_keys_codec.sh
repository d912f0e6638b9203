#!/usr/bin/env bash
# test/t/030_api_keys_codec.sh -- the API key codec on its own, without a
# server: builds test/codec/key_codec_test.c with src/key_codec.c (plain C,
# warnings are errors) into tmp_check/ and runs it.  The program prints TAP:
# round trips of many keys, and every single-character change, truncation,
# extension, adjacent swap, wrong prefix and random text rejected.
set -u
bin=$DD_ROOT/tmp_check/key_codec_test
mkdir -p "$DD_ROOT/tmp_check"
if ! cc -O2 -Wall -Wextra -Werror -I"$DD_ROOT/src" -o "$bin" \
        "$DD_ROOT/test/codec/key_codec_test.c" "$DD_ROOT/src/key_codec.c"; then
    echo "1..1"
    echo "not ok 1 - test/codec/key_codec_test.c builds with -Wall -Wextra -Werror"
    exit 1
fi
exec "$bin"
