/*-------------------------------------------------------------------------
 *
 * key_codec_test.c
 *	  Standalone test of src/key_codec.c, printing TAP.  Built and run by
 *	  test/t/030_api_keys_codec.sh:
 *
 *		cc -Wall -Wextra -Werror -Isrc test/codec/key_codec_test.c src/key_codec.c
 *
 * Checks, with a fixed-seed generator so a failure can be replayed:
 *	  - the CRC is the standard CRC-32 and the encoding of known inputs;
 *	  - round trips of many random keys, each of the documented shape;
 *	  - every single-character change of many keys (every position, every
 *		other byte value 1..255) is rejected;
 *	  - every truncation, every one-character extension, every adjacent
 *		swap, wrong prefixes (even with a recomputed checksum), a body above
 *		2^256 with a correct checksum, and random text are rejected.
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "key_codec.h"
#include "codec_tap.h"

static void
random_bytes(uint8_t *buf, size_t len)
{
	size_t		i;

	for (i = 0; i < len; i++)
		buf[i] = (uint8_t) (next_random() >> 56);
}

static const char alphabet[] =
"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/* The 6 checksum digits of text[0..len), as the codec writes them. */
static void
checksum_digits(const char *text, size_t len, char out[DD_KEY_CHECK_LEN])
{
	uint32_t	crc = DdKeyCrc32((const uint8_t *) text, len);
	int			i;

	for (i = DD_KEY_CHECK_LEN - 1; i >= 0; i--)
	{
		out[i] = alphabet[crc % 62];
		crc /= 62;
	}
}

static int
well_formed_shape(const char *key)
{
	size_t		i;

	if (strlen(key) != DD_KEY_LEN || strncmp(key, "ddk_", 4) != 0)
		return 0;
	for (i = DD_KEY_PREFIX_LEN; i < DD_KEY_LEN; i++)
		if (strchr(alphabet, key[i]) == NULL || key[i] == '\0')
			return 0;
	return 1;
}

#define ROUND_TRIPS 20000
#define MUTATED_KEYS 300
#define RANDOM_TEXTS 200000

int
main(void)
{
	uint8_t		bytes[DD_KEY_RANDOM_BYTES];
	uint8_t		back[DD_KEY_RANDOM_BYTES];
	char		key[DD_KEY_LEN + 2];
	char		copy[DD_KEY_LEN + 2];
	int			n;
	int			bad;
	long		tried;
	size_t		pos;
	int			c;

	printf("1..14\n");

	/* 1: the standard CRC-32 check value. */
	ok(DdKeyCrc32((const uint8_t *) "123456789", 9) == 0xCBF43926u,
	   "CRC-32 of \"123456789\" is the standard check value cbf43926");

	/* 2-3: known inputs, expected texts computed independently (Python zlib). */
	memset(bytes, 0, sizeof(bytes));
	DdKeyEncode(bytes, key);
	ok(strcmp(key, "ddk_00000000000000000000000000000000000000000002TEw9T") == 0
	   && DdKeyDecode(key, strlen(key), back)
	   && memcmp(back, bytes, sizeof(bytes)) == 0,
	   "32 zero bytes encode to the known key and decode back");
	memset(bytes, 0xFF, sizeof(bytes));
	DdKeyEncode(bytes, key);
	ok(strcmp(key, "ddk_yhjskwdA6OZ1AL1YmHWZWm8LLG7HjnuCA2j5rOw8Xp10pcpBj") == 0
	   && DdKeyDecode(key, strlen(key), back)
	   && memcmp(back, bytes, sizeof(bytes)) == 0,
	   "32 bytes of 0xFF (the largest body, 2^256 - 1) encode to the known key and decode back");

	/* 4: round trips of many random keys, each of the documented shape. */
	bad = 0;
	for (n = 0; n < ROUND_TRIPS; n++)
	{
		random_bytes(bytes, sizeof(bytes));
		DdKeyEncode(bytes, key);
		if (!well_formed_shape(key)
			|| !DdKeyDecode(key, DD_KEY_LEN, back)
			|| memcmp(back, bytes, sizeof(bytes)) != 0)
			bad++;
	}
	ok(bad == 0, "20000 random keys: 53 characters, ddk_ prefix, base62, decode to their bytes");

	/* 5: every single-character change of many keys is rejected. */
	bad = 0;
	tried = 0;
	for (n = 0; n < MUTATED_KEYS; n++)
	{
		random_bytes(bytes, sizeof(bytes));
		DdKeyEncode(bytes, key);
		for (pos = 0; pos < DD_KEY_LEN; pos++)
		{
			for (c = 1; c < 256; c++)
			{
				if (c == (unsigned char) key[pos])
					continue;
				memcpy(copy, key, DD_KEY_LEN + 1);
				copy[pos] = (char) c;
				tried++;
				if (DdKeyDecode(copy, DD_KEY_LEN, NULL))
					bad++;
			}
		}
	}
	printf("# %ld single-character mutations tried\n", tried);
	ok(bad == 0 && tried == (long) MUTATED_KEYS * DD_KEY_LEN * 254,
	   "every single-character change (53 positions x 254 other bytes) of 300 keys is rejected");

	/* 6: every truncation and every one-character extension. */
	bad = 0;
	for (n = 0; n < 200; n++)
	{
		random_bytes(bytes, sizeof(bytes));
		DdKeyEncode(bytes, key);
		for (pos = 0; pos < DD_KEY_LEN; pos++)
			if (DdKeyDecode(key, pos, NULL))
				bad++;
		for (c = 0; c < 62; c++)
		{
			memcpy(copy, key, DD_KEY_LEN);
			copy[DD_KEY_LEN] = alphabet[c];
			copy[DD_KEY_LEN + 1] = '\0';
			if (DdKeyDecode(copy, DD_KEY_LEN + 1, NULL))
				bad++;
		}
	}
	ok(bad == 0, "every truncation (0..52 characters) and every one-character extension is rejected");

	/* 7: every swap of two adjacent, different characters. */
	bad = 0;
	tried = 0;
	for (n = 0; n < 500; n++)
	{
		random_bytes(bytes, sizeof(bytes));
		DdKeyEncode(bytes, key);
		for (pos = 0; pos + 1 < DD_KEY_LEN; pos++)
		{
			if (key[pos] == key[pos + 1])
				continue;
			memcpy(copy, key, DD_KEY_LEN + 1);
			copy[pos] = key[pos + 1];
			copy[pos + 1] = key[pos];
			tried++;
			if (DdKeyDecode(copy, DD_KEY_LEN, NULL))
				bad++;
		}
	}
	ok(bad == 0 && tried > 20000, "every adjacent swap of two different characters is rejected");

	/* 8: a wrong prefix is rejected even with a checksum recomputed for it. */
	{
		static const char *const prefixes[] = {"DDK_", "ddk-", "sk__", "ddK_", "xdk_"};
		size_t		p;

		bad = 0;
		random_bytes(bytes, sizeof(bytes));
		DdKeyEncode(bytes, key);
		for (p = 0; p < sizeof(prefixes) / sizeof(prefixes[0]); p++)
		{
			memcpy(copy, key, DD_KEY_LEN + 1);
			memcpy(copy, prefixes[p], 4);
			checksum_digits(copy, 47, copy + 47);
			if (DdKeyDecode(copy, DD_KEY_LEN, NULL))
				bad++;
		}
		ok(bad == 0, "a wrong prefix is rejected, even with a checksum that matches it");
	}

	/* 9: a body of 2^256 or more is rejected even with a matching checksum. */
	memset(copy, 'z', DD_KEY_LEN);
	memcpy(copy, "ddk_", 4);
	checksum_digits(copy, 47, copy + 47);
	copy[DD_KEY_LEN] = '\0';
	ok(!DdKeyDecode(copy, DD_KEY_LEN, NULL),
	   "a body above 2^256 (43 z digits) is rejected even with a matching checksum");

	/* 10: random 53-character text with the right prefix and alphabet. */
	bad = 0;
	for (n = 0; n < RANDOM_TEXTS; n++)
	{
		memcpy(copy, "ddk_", 4);
		for (pos = 4; pos < DD_KEY_LEN; pos++)
			copy[pos] = alphabet[next_random() % 62];
		copy[DD_KEY_LEN] = '\0';
		if (DdKeyDecode(copy, DD_KEY_LEN, NULL))
			bad++;
	}
	ok(bad == 0, "200000 random texts of the right shape are rejected");

	/* 11: empty, NULL and short non-key strings. */
	ok(!DdKeyDecode("", 0, NULL) && !DdKeyDecode(NULL, 0, NULL)
	   && !DdKeyDecode(NULL, DD_KEY_LEN, NULL)
	   && !DdKeyDecode("ddk_", 4, NULL)
	   && !DdKeyDecode("hello world", 11, NULL),
	   "empty, NULL, a bare prefix and random short text are rejected");

	/* 12: a NUL byte inside the key does not end it early. */
	random_bytes(bytes, sizeof(bytes));
	DdKeyEncode(bytes, key);
	memcpy(copy, key, DD_KEY_LEN + 1);
	copy[20] = '\0';
	ok(!DdKeyDecode(copy, DD_KEY_LEN, NULL), "an embedded NUL is rejected");

	/* 13: encoding is deterministic and distinct bytes give distinct keys. */
	{
		char		key2[DD_KEY_LEN + 1];

		random_bytes(bytes, sizeof(bytes));
		DdKeyEncode(bytes, key);
		DdKeyEncode(bytes, key2);
		bad = strcmp(key, key2) != 0;
		bytes[31] ^= 1;
		DdKeyEncode(bytes, key2);
		bad += strcmp(key, key2) == 0;
		ok(bad == 0, "the same bytes give the same key, one flipped bit another key");
	}

	/* 14: a key decodes from a buffer that is not NUL-terminated. */
	random_bytes(bytes, sizeof(bytes));
	DdKeyEncode(bytes, key);
	key[DD_KEY_LEN] = 'x';
	ok(DdKeyDecode(key, DD_KEY_LEN, back) && memcmp(back, bytes, sizeof(bytes)) == 0,
	   "a key is read by length, not up to a NUL");

	return failures > 0;
}
