/*-------------------------------------------------------------------------
 *
 * key_codec.h
 *	  The text form of a dd_clipper API key: a fixed prefix, 32 random bytes
 *	  in base62, and a checksum.  Plain C with no PostgreSQL dependency, so
 *	  the codec can be tested and fuzzed on its own (test/codec/).
 *
 * Layout (53 ASCII characters):
 *
 *	  ddk_ BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB CCCCCC
 *	  |    |                                           |
 *	  |    43 base62 digits: the 32 bytes read as one   6 base62 digits: CRC-32
 *	  |    big-endian 256-bit number, zero-padded       (IEEE 802.3) of the 47
 *	  prefix                                            characters before it
 *
 * The base62 alphabet is 0-9, A-Z, a-z (in that order, so digit values sort
 * like the characters).  Decoding is strict: the length, the prefix, every
 * character, the body's value (below 2^256) and the checksum must all be
 * exactly right, and there is one valid text per 32 bytes.
 *
 * Why a CRC over the characters: CRC-32 detects every burst of errors no
 * longer than 32 bits.  Changing one character of the prefix or body flips
 * bits inside one byte, and swapping two adjacent characters inside two
 * bytes, so both are always detected, not merely with high probability.  A
 * change in the checksum digits changes the checksum value itself.  Random
 * text passes with probability about 2^-32 per try, before it ever reaches
 * a table.
 *
 *-------------------------------------------------------------------------
 */
#ifndef DD_KEY_CODEC_H
#define DD_KEY_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DD_KEY_PREFIX		"ddk_"
#define DD_KEY_PREFIX_LEN	4
#define DD_KEY_RANDOM_BYTES 32
#define DD_KEY_BODY_LEN		43	/* 62^43 > 2^256 > 62^42 */
#define DD_KEY_CHECK_LEN	6	/* 62^6 > 2^32 > 62^5 */
#define DD_KEY_LEN			(DD_KEY_PREFIX_LEN + DD_KEY_BODY_LEN + DD_KEY_CHECK_LEN)

/* Characters shown to identify a key: the prefix and 8 body digits. */
#define DD_KEY_DISPLAY_LEN	(DD_KEY_PREFIX_LEN + 8)

/*
 * DdKeyEncode: the key text of 32 bytes, NUL-terminated in out.
 * DdKeyDecode: true when key (len bytes, not necessarily NUL-terminated) is
 *		a well-formed key; its 32 bytes then go to bytes (which may be NULL).
 * DdKeyCrc32: the CRC-32 (IEEE 802.3, as zlib's crc32) of data.
 */
extern void DdKeyEncode(const uint8_t bytes[DD_KEY_RANDOM_BYTES],
						char out[DD_KEY_LEN + 1]);
extern bool DdKeyDecode(const char *key, size_t len,
						uint8_t bytes[DD_KEY_RANDOM_BYTES]);
extern uint32_t DdKeyCrc32(const uint8_t *data, size_t len);

#endif							/* DD_KEY_CODEC_H */
