/*
 * test/codec/cursor_codec_test.c
 *	  Standalone test of the dd_clips_page cursor codec (src/cursor_codec.c),
 *	  without PostgreSQL: SipHash-2-4 against its published test vector,
 *	  round trips of random cursors, every one-character change of a cursor
 *	  (to every other base64url character and to every byte outside the
 *	  alphabet) refused, every other length refused, another key refused,
 *	  unknown flags refused, random text refused.  Prints TAP.
 *
 *	  Built and run by test/t/040_clips_cursor_codec.sh.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cursor_codec.h"
#include "codec_tap.h"

static const char alphabet[] =
"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void
random_cursor(DdCursor *c)
{
	c->sort = (uint8_t) (next_random() % 3);
	c->flags = (next_random() & 1) ? DD_CURSOR_HAS_POSITION : 0;
	c->query_hash = next_random();
	c->key1 = next_random();
	c->id = (int64_t) next_random();
}

int
main(void)
{
	uint8_t		key[DD_CURSOR_KEY_LEN];
	uint8_t		other_key[DD_CURSOR_KEY_LEN];
	uint8_t		msg[15];
	char		text[DD_CURSOR_TEXT_LEN + 1];
	char		copy[DD_CURSOR_TEXT_LEN + 64];
	DdCursor	c,
				d;
	int			i,
				pos,
				round;
	int			good;
	long		mutations = 0,
				accepted = 0;

	printf("1..10\n");

	/* SipHash-2-4 test vector: key 00..0f, message 00..0e. */
	for (i = 0; i < 16; i++)
		key[i] = (uint8_t) i;
	for (i = 0; i < 15; i++)
		msg[i] = (uint8_t) i;
	ok(dd_siphash24(key, msg, 15) == 0xa129ca6149be45e5ULL,
	   "siphash-2-4 matches the published test vector");

	for (i = 0; i < 16; i++)
	{
		key[i] = (uint8_t) next_random();
		other_key[i] = key[i];
	}
	other_key[7] ^= 0x01;

	/* Round trips. */
	good = 1;
	for (round = 0; round < 100000; round++)
	{
		random_cursor(&c);
		dd_cursor_encode(&c, key, text);
		if (strlen(text) != DD_CURSOR_TEXT_LEN ||
			strspn(text, alphabet) != DD_CURSOR_TEXT_LEN ||
			dd_cursor_decode(text, strlen(text), key, &d) != DD_CURSOR_OK ||
			d.sort != c.sort || d.flags != c.flags ||
			d.query_hash != c.query_hash || d.key1 != c.key1 || d.id != c.id)
		{
			good = 0;
			break;
		}
	}
	ok(good, "100000 random cursors round-trip, 47 base64url characters each");

	/* Extreme values round-trip too. */
	c.sort = 255;
	c.flags = DD_CURSOR_HAS_POSITION;
	c.query_hash = UINT64_MAX;
	c.key1 = 0;
	c.id = INT64_MIN;
	dd_cursor_encode(&c, key, text);
	ok(dd_cursor_decode(text, strlen(text), key, &d) == DD_CURSOR_OK &&
	   d.id == INT64_MIN && d.query_hash == UINT64_MAX && d.sort == 255,
	   "extreme values round-trip");

	/* Every character changed to every other base64url character. */
	for (round = 0; round < 300; round++)
	{
		random_cursor(&c);
		dd_cursor_encode(&c, key, text);
		for (pos = 0; pos < DD_CURSOR_TEXT_LEN; pos++)
			for (i = 0; i < 64; i++)
			{
				if (alphabet[i] == text[pos])
					continue;
				memcpy(copy, text, sizeof(text));
				copy[pos] = alphabet[i];
				mutations++;
				if (dd_cursor_decode(copy, DD_CURSOR_TEXT_LEN, key, &d) == DD_CURSOR_OK)
					accepted++;
			}
	}
	printf("# %ld one-character changes tried, %ld accepted\n", mutations, accepted);
	ok(accepted == 0, "every one-character change to another base64url character is refused");

	/* Every character changed to every byte outside the alphabet: MALFORMED. */
	good = 1;
	random_cursor(&c);
	dd_cursor_encode(&c, key, text);
	for (pos = 0; pos < DD_CURSOR_TEXT_LEN; pos++)
		for (i = 0; i < 256; i++)
		{
			if (i != 0 && strchr(alphabet, i) != NULL)
				continue;
			memcpy(copy, text, sizeof(text));
			copy[pos] = (char) i;
			if (dd_cursor_decode(copy, DD_CURSOR_TEXT_LEN, key, &d) != DD_CURSOR_MALFORMED)
				good = 0;
		}
	ok(good, "every byte outside base64url at every position is malformed");

	/* Every other length: MALFORMED, whatever the content. */
	good = 1;
	memset(copy, 'A', sizeof(copy));
	memcpy(copy, text, DD_CURSOR_TEXT_LEN);
	for (i = 0; i < (int) sizeof(copy); i++)
		if (i != DD_CURSOR_TEXT_LEN &&
			dd_cursor_decode(copy, i, key, &d) != DD_CURSOR_MALFORMED)
			good = 0;
	ok(good && dd_cursor_decode(NULL, 0, key, &d) == DD_CURSOR_MALFORMED,
	   "every length but 47 (and NULL) is malformed");

	/* A cursor of another database (another key). */
	good = 1;
	for (round = 0; round < 10000; round++)
	{
		random_cursor(&c);
		dd_cursor_encode(&c, key, text);
		if (dd_cursor_decode(text, DD_CURSOR_TEXT_LEN, other_key, &d) != DD_CURSOR_BAD_CHECKSUM)
			good = 0;
	}
	ok(good, "a cursor made with another key fails the checksum");

	/* Unknown flags, even with a valid checksum. */
	c.flags = 0x02;
	dd_cursor_encode(&c, key, text);
	ok(dd_cursor_decode(text, DD_CURSOR_TEXT_LEN, key, &d) == DD_CURSOR_BAD_FLAGS,
	   "unknown flag bits are refused");

	/* Another format version: "B" as second character makes byte 0 = 2. */
	c.flags = 0;
	dd_cursor_encode(&c, key, text);
	memcpy(copy, text, sizeof(text));
	copy[0] = 'A';
	copy[1] = (char) (copy[1] == 'g' ? 'h' : 'g');	/* byte 0 = 2, bits of byte 1 kept or changed */
	ok(dd_cursor_decode(copy, DD_CURSOR_TEXT_LEN, key, &d) == DD_CURSOR_BAD_FORMAT,
	   "another format version is reported as such");

	/* Random base64url text of the right length. */
	accepted = 0;
	for (round = 0; round < 200000; round++)
	{
		for (pos = 0; pos < DD_CURSOR_TEXT_LEN; pos++)
			copy[pos] = alphabet[next_random() % 64];
		if (dd_cursor_decode(copy, DD_CURSOR_TEXT_LEN, key, &d) == DD_CURSOR_OK)
			accepted++;
	}
	ok(accepted == 0, "200000 random 47-character texts are all refused");

	return failures > 0;
}
