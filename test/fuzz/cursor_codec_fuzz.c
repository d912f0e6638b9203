/*
 * test/fuzz/cursor_codec_fuzz.c -- libFuzzer target for src/cursor_codec.c.
 *
 * Any input:
 *   - dd_cursor_decode (under a fixed key) must not read past it or crash,
 *     and a text it accepts must be exactly what dd_cursor_encode makes of
 *     the decoded cursor (one text per cursor);
 *   - the input's first 27 bytes, read as a cursor, must encode to a text
 *     that decodes back to the same cursor under the same key, and be
 *     refused under another key and with any one character changed.
 *   - dd_siphash24 of the whole input must not crash.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cursor_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t key[DD_CURSOR_KEY_LEN] =
{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
static const uint8_t other_key[DD_CURSOR_KEY_LEN] =
{1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

static uint64_t
get64(const uint8_t *p)
{
	uint64_t	v = 0;
	int			i;

	for (i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	DdCursor	c;
	DdCursor	back;
	char		text[DD_CURSOR_TEXT_LEN + 1];
	char	   *copy;

	copy = malloc(size ? size : 1);
	memcpy(copy, data, size);
	if (dd_cursor_decode(copy, size, key, &c) == DD_CURSOR_OK)
	{
		dd_cursor_encode(&c, key, text);
		if (size != DD_CURSOR_TEXT_LEN || memcmp(text, copy, size) != 0)
			abort();
	}
	free(copy);
	(void) dd_siphash24(key, data, size);

	if (size >= 27)
	{
		size_t		pos;

		memset(&c, 0, sizeof(c));
		c.sort = data[0];
		c.flags = data[1] & DD_CURSOR_HAS_POSITION;
		c.query_hash = get64(data + 3);
		c.key1 = get64(data + 11);
		c.id = (int64_t) get64(data + 19);
		dd_cursor_encode(&c, key, text);
		if (strlen(text) != DD_CURSOR_TEXT_LEN ||
			dd_cursor_decode(text, DD_CURSOR_TEXT_LEN, key, &back) != DD_CURSOR_OK ||
			back.sort != c.sort || back.flags != c.flags ||
			back.query_hash != c.query_hash || back.key1 != c.key1 ||
			back.id != c.id)
			abort();
		if (dd_cursor_decode(text, DD_CURSOR_TEXT_LEN, other_key, &back) == DD_CURSOR_OK)
			abort();
		pos = data[2] % DD_CURSOR_TEXT_LEN;
		text[pos] = text[pos] == 'A' ? 'B' : 'A';
		if (dd_cursor_decode(text, DD_CURSOR_TEXT_LEN, key, &back) == DD_CURSOR_OK)
			abort();
	}
	return 0;
}
