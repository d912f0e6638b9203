/*-------------------------------------------------------------------------
 *
 * key_codec.c
 *	  Encode and check the text form of API keys (layout in key_codec.h).
 *
 * Plain C with no PostgreSQL dependency.  Every function is a pure
 * function of its arguments; the only state is two lookup tables filled on
 * first use with constant contents (CodecInit), so the functions are safe
 * to call from any backend at any time.  test/codec/key_codec_test.c builds this file on its own and checks
 * round trips and that every single-character change is detected.
 *
 *-------------------------------------------------------------------------
 */
#include <string.h>

#include "key_codec.h"

static const char base62_digits[] =
"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/*
 * base62_value: the value of each byte as a base62 digit, or -1.  Built
 * once (CodecInit); the table makes checking a key one load per character.
 */
static signed char base62_value[256];

/* crc32_table: the byte-at-a-time CRC-32 table of the reflected polynomial. */
static uint32_t crc32_table[256];

static bool codec_ready = false;

/*
 * CodecInit
 *		Fill the two tables.  Idempotent, and the tables are the same
 *		whoever fills them, so two threads racing here (there are none in a
 *		backend) would write identical bytes.
 */
static void
CodecInit(void)
{
	int			i;
	int			bit;

	if (codec_ready)
		return;
	for (i = 0; i < 256; i++)
	{
		uint32_t	c = (uint32_t) i;

		base62_value[i] = -1;
		for (bit = 0; bit < 8; bit++)
			c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
		crc32_table[i] = c;
	}
	for (i = 0; i < 62; i++)
		base62_value[(unsigned char) base62_digits[i]] = (signed char) i;
	codec_ready = true;
}

/*
 * DdKeyCrc32
 *		CRC-32 with the IEEE 802.3 polynomial (reflected 0xEDB88320, initial
 *		and final value 0xFFFFFFFF), a byte at a time from crc32_table.
 */
uint32_t
DdKeyCrc32(const uint8_t *data, size_t len)
{
	uint32_t	crc = 0xFFFFFFFFu;
	size_t		i;

	CodecInit();
	for (i = 0; i < len; i++)
		crc = crc32_table[(crc ^ data[i]) & 0xFF] ^ (crc >> 8);
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
	uint32_t	limbs[DD_KEY_RANDOM_BYTES / 4];	/* big-endian 32-bit limbs */
	uint64_t	check = 0;
	size_t		i;
	int			j;

	if (key == NULL || len != DD_KEY_LEN)
		return false;
	if (memcmp(key, DD_KEY_PREFIX, DD_KEY_PREFIX_LEN) != 0)
		return false;
	CodecInit();

	/* The checksum digits: a number below 2^32. */
	for (i = DD_KEY_PREFIX_LEN + DD_KEY_BODY_LEN; i < DD_KEY_LEN; i++)
	{
		int			d = base62_value[text[i]];

		if (d < 0)
			return false;
		check = check * 62 + (uint64_t) d;
	}
	if (check > 0xFFFFFFFFu)
		return false;
	if (DdKeyCrc32(text, DD_KEY_PREFIX_LEN + DD_KEY_BODY_LEN) != (uint32_t) check)
		return false;

	/*
	 * The body, five digits at a time (62^5 < 2^30): limbs = limbs * 62^n +
	 * value of the next n digits, refusing to overflow 256 bits.  Each limb
	 * product plus carry stays below 2^62.
	 */
	memset(limbs, 0, sizeof(limbs));
	for (i = DD_KEY_PREFIX_LEN; i < DD_KEY_PREFIX_LEN + DD_KEY_BODY_LEN;)
	{
		uint64_t	mult = 1;
		uint64_t	carry = 0;
		size_t		end = i + 5;

		if (end > DD_KEY_PREFIX_LEN + DD_KEY_BODY_LEN)
			end = DD_KEY_PREFIX_LEN + DD_KEY_BODY_LEN;
		for (; i < end; i++)
		{
			int			d = base62_value[text[i]];

			if (d < 0)
				return false;
			carry = carry * 62 + (uint64_t) d;
			mult *= 62;
		}
		for (j = DD_KEY_RANDOM_BYTES / 4 - 1; j >= 0; j--)
		{
			uint64_t	cur = (uint64_t) limbs[j] * mult + carry;

			limbs[j] = (uint32_t) cur;
			carry = cur >> 32;
		}
		if (carry != 0)
			return false;
	}

	if (bytes != NULL)
	{
		for (j = 0; j < DD_KEY_RANDOM_BYTES / 4; j++)
		{
			bytes[4 * j] = (uint8_t) (limbs[j] >> 24);
			bytes[4 * j + 1] = (uint8_t) (limbs[j] >> 16);
			bytes[4 * j + 2] = (uint8_t) (limbs[j] >> 8);
			bytes[4 * j + 3] = (uint8_t) limbs[j];
		}
	}
	return true;
}
