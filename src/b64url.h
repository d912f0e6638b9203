/*-------------------------------------------------------------------------
 *
 * b64url.h
 *	  Unpadded base64url (RFC 4648, section 5), strict: the one encoding of
 *	  the server-free codecs' texts (cursor_codec.c, claim_codec.c).  Plain
 *	  C, no PostgreSQL dependency.
 *
 *-------------------------------------------------------------------------
 */
#ifndef DD_B64URL_H
#define DD_B64URL_H

#include <stddef.h>
#include <stdint.h>

static const char dd_b64url_alphabet[] =
"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* The value of one base64url character, or -1 outside the alphabet. */
static inline int
dd_b64url_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

/* len bytes as unpadded base64url into out (no NUL); returns chars. */
static inline size_t
dd_b64url_encode(const uint8_t *in, size_t len, char *out)
{
	uint32_t	acc = 0;
	int			bits = 0;
	size_t		n = 0;
	size_t		i;

	for (i = 0; i < len; i++)
	{
		acc = (acc << 8) | in[i];
		bits += 8;
		while (bits >= 6)
		{
			bits -= 6;
			out[n++] = dd_b64url_alphabet[(acc >> bits) & 0x3f];
		}
	}
	if (bits > 0)
		out[n++] = dd_b64url_alphabet[(acc << (6 - bits)) & 0x3f];
	return n;
}

/*
 * Strict unpadded base64url of len characters into out (at most max
 * bytes).  Returns the byte count, or -1 for a character outside the
 * alphabet, a length no encoding has (len % 4 == 1), nonzero spare bits,
 * or more than max bytes.
 */
static inline long
dd_b64url_decode(const char *in, size_t len, uint8_t *out, size_t max)
{
	uint32_t	acc = 0;
	int			bits = 0;
	size_t		n = 0;
	size_t		i;

	if (len % 4 == 1 || (len / 4) * 3 + (len % 4 ? len % 4 - 1 : 0) > max)
		return -1;
	for (i = 0; i < len; i++)
	{
		int			v = dd_b64url_value((unsigned char) in[i]);

		if (v < 0)
			return -1;
		acc = ((acc << 6) | (uint32_t) v) & 0xffffff;
		bits += 6;
		if (bits >= 8)
		{
			bits -= 8;
			out[n++] = (uint8_t) ((acc >> bits) & 0xff);
		}
	}
	if (bits > 0 && (acc & ((1u << bits) - 1)) != 0)
		return -1;
	return (long) n;
}

#endif							/* DD_B64URL_H */
