/*-------------------------------------------------------------------------
 *
 * cursor_codec.c
 *	  Encode and decode dd_clips_page cursors.  Plain C, no PostgreSQL
 *	  dependency: test/codec/cursor_codec_test.c compiles this file alone
 *	  and checks round trips and that every one-character change of a
 *	  cursor is detected.
 *
 * Layout of the 35 raw bytes, all integers big-endian:
 *
 *	  0		format version (DD_CURSOR_FORMAT)
 *	  1		sort code
 *	  2		flags (DD_CURSOR_HAS_POSITION: bytes 11..26 are a position;
 *			without it the cursor stands for "the start")
 *	  3..10	query hash: a keyed hash of the query the cursor belongs to
 *			(user, sort, filters), computed by the caller
 *	  11..18	first sort key (a timestamp, or the bits of a rank)
 *	  19..26	clip id
 *	  27..34	SipHash-2-4 of bytes 0..26 under the database's secret key
 *
 * written as unpadded base64url (47 characters, URL and JSON safe).  The
 * keyed checksum makes a cursor unforgeable without the key: any change of
 * a byte changes the checksum (a change of the checksum itself no longer
 * matches), and base64url of 35 bytes has no slack bits except in the last
 * character, which decode checks are zero, so every text change is
 * detected, not only every byte change.
 *
 * No state, no locks: safe to call from anywhere.
 *
 *-------------------------------------------------------------------------
 */
#include "cursor_codec.h"
#include "b64url.h"

#include <string.h>

#define ROTL(x, b) (uint64_t) (((x) << (b)) | ((x) >> (64 - (b))))

#define SIPROUND \
	do { \
		v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32); \
		v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2; \
		v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0; \
		v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32); \
	} while (0)

static uint64_t
load_le64(const uint8_t *p)
{
	uint64_t	v = 0;
	int			i;

	for (i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static void
store_be64(uint8_t *p, uint64_t v)
{
	int			i;

	for (i = 7; i >= 0; i--)
	{
		p[i] = (uint8_t) (v & 0xff);
		v >>= 8;
	}
}

static uint64_t
load_be64(const uint8_t *p)
{
	uint64_t	v = 0;
	int			i;

	for (i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

/*
 * dd_siphash24
 *		SipHash-2-4 (Aumasson and Bernstein) of len bytes of data under a
 *		128-bit key: a keyed hash made for short inputs.
 */
uint64_t
dd_siphash24(const uint8_t key[DD_CURSOR_KEY_LEN], const void *data, size_t len)
{
	const uint8_t *in = (const uint8_t *) data;
	uint64_t	k0 = load_le64(key);
	uint64_t	k1 = load_le64(key + 8);
	uint64_t	v0 = UINT64_C(0x736f6d6570736575) ^ k0;
	uint64_t	v1 = UINT64_C(0x646f72616e646f6d) ^ k1;
	uint64_t	v2 = UINT64_C(0x6c7967656e657261) ^ k0;
	uint64_t	v3 = UINT64_C(0x7465646279746573) ^ k1;
	uint64_t	b = ((uint64_t) len) << 56;
	size_t		full = len - (len % 8);
	size_t		i;

	for (i = 0; i < full; i += 8)
	{
		uint64_t	m = load_le64(in + i);

		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	for (i = 0; i < len % 8; i++)
		b |= ((uint64_t) in[full + i]) << (8 * i);

	v3 ^= b;
	SIPROUND;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

/*
 * dd_cursor_encode
 *		Write cursor as DD_CURSOR_TEXT_LEN base64url characters and a NUL.
 */
void
dd_cursor_encode(const DdCursor *cursor, const uint8_t key[DD_CURSOR_KEY_LEN],
				 char *out)
{
	uint8_t		raw[DD_CURSOR_RAW_LEN];

	raw[0] = DD_CURSOR_FORMAT;
	raw[1] = cursor->sort;
	raw[2] = cursor->flags;
	store_be64(raw + 3, cursor->query_hash);
	store_be64(raw + 11, cursor->key1);
	store_be64(raw + 19, (uint64_t) cursor->id);
	store_be64(raw + 27, dd_siphash24(key, raw, 27));

	out[dd_b64url_encode(raw, DD_CURSOR_RAW_LEN, out)] = '\0';
}

/*
 * dd_cursor_decode
 *		Parse and check a cursor.  Checks, in order: length and alphabet
 *		(MALFORMED), format version (BAD_FORMAT), keyed checksum
 *		(BAD_CHECKSUM), flags (BAD_FLAGS).  Whether the cursor belongs to
 *		the caller's query is the caller's check (compare query_hash and
 *		sort).
 */
DdCursorStatus
dd_cursor_decode(const char *text, size_t len,
				 const uint8_t key[DD_CURSOR_KEY_LEN], DdCursor *cursor)
{
	uint8_t		raw[DD_CURSOR_RAW_LEN];

	if (text == NULL || len != DD_CURSOR_TEXT_LEN)
		return DD_CURSOR_MALFORMED;

	/* 47 * 6 = 282 bits = 35 bytes and 2 spare bits, which must be zero. */
	if (dd_b64url_decode(text, len, raw, sizeof(raw)) != DD_CURSOR_RAW_LEN)
		return DD_CURSOR_MALFORMED;

	if (raw[0] != DD_CURSOR_FORMAT)
		return DD_CURSOR_BAD_FORMAT;
	if (load_be64(raw + 27) != dd_siphash24(key, raw, 27))
		return DD_CURSOR_BAD_CHECKSUM;
	if ((raw[2] & ~DD_CURSOR_HAS_POSITION) != 0)
		return DD_CURSOR_BAD_FLAGS;

	cursor->sort = raw[1];
	cursor->flags = raw[2];
	cursor->query_hash = load_be64(raw + 3);
	cursor->key1 = load_be64(raw + 11);
	cursor->id = (int64_t) load_be64(raw + 19);
	return DD_CURSOR_OK;
}
