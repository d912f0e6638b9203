/*-------------------------------------------------------------------------
 *
 * key_codec.c
 *	  Encode and check the text form of API keys (layout in key_codec.h).
 *
 * Plain C with no PostgreSQL dependency and no state: every function is a
 * pure function of its arguments, safe to call from any backend at any
 * time.  test/codec/key_codec_test.c builds this file on its own and checks
 * round trips and that every single-character change is detected.
 *
 *-------------------------------------------------------------------------
 */
#include <string.h>

#include "key_codec.h"

static const char base62_digits[] =
"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/*
 * Base62Value
 *		The value of one base62 digit, or -1 when c is not one.
 */
static inline int
Base62Value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'Z')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 36;
	return -1;
}

/*
 * DdKeyCrc32
 *		CRC-32 with the IEEE 802.3 polynomial (reflected 0xEDB88320, initial
 *		and final value 0xFFFFFFFF), bit by bit: keys are 47 bytes, a table
 *		would not pay for itself.
 */
uint32_t
DdKeyCrc32(const uint8_t *data, size_t len)
{
	uint32_t	crc = 0xFFFFFFFFu;
	size_t		i;
	int			bit;

	for (i = 0; i < len; i++)
	{
		crc ^= data[i];
		for (bit = 0; bit < 8; bit++)
			crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
	}
	return crc ^ 0xFFFFFFFFu;
}

/*
 * DdKeyEncode
 *		Write the key text of bytes into out: prefix, the bytes as a
 *		43-digit base62 number, the 6-digit checksum, and a NUL.
 */
void
DdKeyEncode(const uint8_t bytes[DD_KEY_RANDOM_BYTES], char out[DD_KEY_LEN + 1])
{
	uint8_t		num[DD_KEY_RANDOM_BYTES];
	uint32_t	crc;
	int			i;
	int			j;

	memcpy(out, DD_KEY_PREFIX, DD_KEY_PREFIX_LEN);

	/* Repeated division of the big-endian number by 62, last digit first. */
	memcpy(num, bytes, DD_KEY_RANDOM_BYTES);
	for (i = DD_KEY_BODY_LEN - 1; i >= 0; i--)
	{
		unsigned int rem = 0;

		for (j = 0; j < DD_KEY_RANDOM_BYTES; j++)
		{
			unsigned int cur = (rem << 8) | num[j];

			num[j] = (uint8_t) (cur / 62);
			rem = cur % 62;
		}
		out[DD_KEY_PREFIX_LEN + i] = base62_digits[rem];
	}

	crc = DdKeyCrc32((const uint8_t *) out, DD_KEY_PREFIX_LEN + DD_KEY_BODY_LEN);
	for (i = DD_KEY_CHECK_LEN - 1; i >= 0; i--)
	{
		out[DD_KEY_PREFIX_LEN + DD_KEY_BODY_LEN + i] = base62_digits[crc % 62];
		crc /= 62;
	}
	out[DD_KEY_LEN] = '\0';
}

/*
 * DdKeyDecode
 *		Check that key[0..len) is a well-formed key, and if bytes is not
 *		NULL, store the 32 bytes it encodes there.  Returns false, leaving
 *		bytes unspecified, for anything else: wrong length or prefix, a
 *		character outside base62, a body of 2^256 or more (no encoder
 *		writes it), or a checksum that does not match.
 */
bool
DdKeyDecode(const char *key, size_t len, uint8_t bytes[DD_KEY_RANDOM_BYTES])
{
	const uint8_t *text = (const uint8_t *) key;
	uint8_t		num[DD_KEY_RANDOM_BYTES];
	uint64_t	check = 0;
	size_t		i;
	int			j;

	if (key == NULL || len != DD_KEY_LEN)
		return false;
	if (memcmp(key, DD_KEY_PREFIX, DD_KEY_PREFIX_LEN) != 0)
		return false;

	/* The checksum digits: a number below 2^32. */
	for (i = DD_KEY_PREFIX_LEN + DD_KEY_BODY_LEN; i < DD_KEY_LEN; i++)
	{
		int			d = Base62Value(text[i]);

		if (d < 0)
			return false;
		check = check * 62 + (uint64_t) d;
	}
	if (check > 0xFFFFFFFFu)
		return false;
	if (DdKeyCrc32(text, DD_KEY_PREFIX_LEN + DD_KEY_BODY_LEN) != (uint32_t) check)
		return false;

	/* The body: num = num * 62 + digit, refusing to overflow 256 bits. */
	memset(num, 0, sizeof(num));
	for (i = DD_KEY_PREFIX_LEN; i < DD_KEY_PREFIX_LEN + DD_KEY_BODY_LEN; i++)
	{
		int			d = Base62Value(text[i]);
		unsigned int carry;

		if (d < 0)
			return false;
		carry = (unsigned int) d;
		for (j = DD_KEY_RANDOM_BYTES - 1; j >= 0; j--)
		{
			unsigned int cur = num[j] * 62u + carry;

			num[j] = (uint8_t) (cur & 0xFF);
			carry = cur >> 8;
		}
		if (carry != 0)
			return false;
	}

	if (bytes != NULL)
		memcpy(bytes, num, DD_KEY_RANDOM_BYTES);
	return true;
}
