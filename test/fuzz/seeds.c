/*
 * test/fuzz/seeds.c -- writes the seed corpus of each fuzz target: a few
 * valid texts (a key, cursors under the cursor target's fixed key, claims)
 * and near misses, so the fuzzer starts from inputs that reach the deep
 * checks instead of finding the formats from nothing.
 *
 *   seeds DIR    writes DIR/key_codec/, DIR/cursor_codec/, DIR/claim_codec/
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "claim_codec.h"
#include "cursor_codec.h"
#include "key_codec.h"

static void
put(const char *dir, const char *target, const char *name, const void *data, size_t len)
{
	char		path[4096];
	FILE	   *f;

	snprintf(path, sizeof(path), "%s/%s/%s", dir, target, name);
	f = fopen(path, "wb");
	if (f == NULL || fwrite(data, 1, len, f) != len || fclose(f) != 0)
	{
		perror(path);
		exit(1);
	}
}

int
main(int argc, char **argv)
{
	static const uint8_t ckey[DD_CURSOR_KEY_LEN] =
	{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
	uint8_t		bytes[DD_KEY_RANDOM_BYTES];
	uint8_t		mac[DD_CLAIM_MAC_LEN];
	char		key[DD_KEY_LEN + 1];
	char		cursor[DD_CURSOR_TEXT_LEN + 1];
	char		claim[DD_CLAIM_MAX_TEXT_LEN + 1];
	DdCursor	c;
	size_t		n;
	int			i;

	if (argc != 2)
	{
		fprintf(stderr, "usage: seeds DIR\n");
		return 2;
	}
	for (i = 0; i < DD_KEY_RANDOM_BYTES; i++)
		bytes[i] = (uint8_t) (i * 37 + 11);
	DdKeyEncode(bytes, key);
	put(argv[1], "key_codec", "valid", key, DD_KEY_LEN);
	memset(bytes, 0xff, sizeof(bytes));
	DdKeyEncode(bytes, key);
	put(argv[1], "key_codec", "valid_max", key, DD_KEY_LEN);
	put(argv[1], "key_codec", "truncated", key, DD_KEY_LEN - 1);
	put(argv[1], "key_codec", "prefix", "ddk_", 4);

	memset(&c, 0, sizeof(c));
	dd_cursor_encode(&c, ckey, cursor);
	put(argv[1], "cursor_codec", "start", cursor, DD_CURSOR_TEXT_LEN);
	c.sort = 2;
	c.flags = DD_CURSOR_HAS_POSITION;
	c.query_hash = 0x0123456789abcdefULL;
	c.key1 = 0x00020000aabbccddULL;
	c.id = 424242;
	dd_cursor_encode(&c, ckey, cursor);
	put(argv[1], "cursor_codec", "position", cursor, DD_CURSOR_TEXT_LEN);
	put(argv[1], "cursor_codec", "short", cursor, 20);

	for (i = 0; i < DD_CLAIM_MAC_LEN; i++)
		mac[i] = (uint8_t) (i * 7);
	n = DdClaimEncodeSigned(1, 850000000000000LL, "user_1", 6, claim);
	n = DdClaimAppendMac(claim, n, mac);
	put(argv[1], "claim_codec", "valid", claim, n);
	n = DdClaimEncodeSigned(7, -1, "\xc3\xa9t\xc3\xa9", 5, claim);
	n = DdClaimAppendMac(claim, n, mac);
	put(argv[1], "claim_codec", "multibyte", claim, n);
	put(argv[1], "claim_codec", "dots", "ddc1...", 7);
	return 0;
}
