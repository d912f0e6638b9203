/*-------------------------------------------------------------------------
 *
 * claim_codec.c
 *	  Encode and parse the text of row-security claims (layout in
 *	  claim_codec.h).  Plain C, no PostgreSQL dependency, no state: safe to
 *	  call from anywhere.  test/fuzz/claim_codec_fuzz.c fuzzes it.
 *
 *-------------------------------------------------------------------------
 */
#include "claim_codec.h"

#include <string.h>

static const char b64url[] =
"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int
b64url_value(unsigned char c)
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

/* b64url_encode: len bytes as unpadded base64url into out; returns chars. */
static size_t
b64url_encode(const uint8_t *in, size_t len, char *out)
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
			out[n++] = b64url[(acc >> bits) & 0x3f];
		}
	}
	if (bits > 0)
		out[n++] = b64url[(acc << (6 - bits)) & 0x3f];
	return n;
}

/*
 * b64url_decode: strict unpadded base64url of len characters into out (at
 * most max bytes).  Returns the byte count, or -1 for a character outside
 * the alphabet, a length no encoding has (len % 4 == 1), nonzero spare
 * bits, or more than max bytes.
 */
static long
b64url_decode(const char *in, size_t len, uint8_t *out, size_t max)
{
	uint32_t	acc = 0;
	int			bits = 0;
	size_t		n = 0;
	size_t		i;

	if (len % 4 == 1 || (len / 4) * 3 + (len % 4 ? len % 4 - 1 : 0) > max)
		return -1;
	for (i = 0; i < len; i++)
	{
		int			v = b64url_value((unsigned char) in[i]);

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

size_t
DdClaimEncodeSigned(uint32_t key_id, int64_t expires, const char *user_id,
					size_t user_id_len, char *out)
{
	uint8_t		payload[DD_CLAIM_MAX_PAYLOAD];
	uint64_t	e = (uint64_t) expires;
	size_t		n;
	int			i;

	if (user_id_len < 1 || user_id_len > DD_CLAIM_MAX_USER_BYTES)
		return 0;
	for (i = 0; i < 4; i++)
		payload[i] = (uint8_t) (key_id >> (24 - 8 * i));
	for (i = 0; i < 8; i++)
		payload[4 + i] = (uint8_t) (e >> (56 - 8 * i));
	memcpy(payload + DD_CLAIM_HEADER_LEN, user_id, user_id_len);

	memcpy(out, DD_CLAIM_PREFIX, DD_CLAIM_PREFIX_LEN);
	n = DD_CLAIM_PREFIX_LEN;
	n += b64url_encode(payload, DD_CLAIM_HEADER_LEN + user_id_len, out + n);
	out[n] = '\0';
	return n;
}

size_t
DdClaimAppendMac(char *out, size_t len, const uint8_t mac[DD_CLAIM_MAC_LEN])
{
	out[len++] = '.';
	len += b64url_encode(mac, DD_CLAIM_MAC_LEN, out + len);
	out[len] = '\0';
	return len;
}

DdClaimStatus
DdClaimDecode(const char *text, size_t len, DdClaim *claim)
{
	const char *payload_text;
	const char *dot;
	size_t		payload_len;
	long		n;
	int			i;

	if (text == NULL || len < DD_CLAIM_PREFIX_LEN + 1 + DD_CLAIM_MAC_TEXT_LEN ||
		len > DD_CLAIM_MAX_TEXT_LEN ||
		memcmp(text, DD_CLAIM_PREFIX, DD_CLAIM_PREFIX_LEN) != 0)
		return DD_CLAIM_MALFORMED;

	/* The MAC is the last 43 characters, after the second dot. */
	dot = text + len - DD_CLAIM_MAC_TEXT_LEN - 1;
	if (*dot != '.')
		return DD_CLAIM_MALFORMED;
	payload_text = text + DD_CLAIM_PREFIX_LEN;
	payload_len = (size_t) (dot - payload_text);

	n = b64url_decode(payload_text, payload_len, claim->payload,
					  DD_CLAIM_MAX_PAYLOAD);
	if (n < DD_CLAIM_HEADER_LEN + 1)
		return DD_CLAIM_MALFORMED;
	if (b64url_decode(dot + 1, DD_CLAIM_MAC_TEXT_LEN, claim->mac,
					  DD_CLAIM_MAC_LEN) != DD_CLAIM_MAC_LEN)
		return DD_CLAIM_MALFORMED;

	claim->key_id = 0;
	for (i = 0; i < 4; i++)
		claim->key_id = (claim->key_id << 8) | claim->payload[i];
	{
		uint64_t	e = 0;

		for (i = 0; i < 8; i++)
			e = (e << 8) | claim->payload[4 + i];
		claim->expires = (int64_t) e;
	}
	claim->user_id_len = (size_t) n - DD_CLAIM_HEADER_LEN;
	claim->signed_len = (size_t) (dot - text);
	return DD_CLAIM_OK;
}

bool
DdClaimMacEqual(const uint8_t a[DD_CLAIM_MAC_LEN],
				const uint8_t b[DD_CLAIM_MAC_LEN])
{
	volatile uint8_t diff = 0;
	int			i;

	for (i = 0; i < DD_CLAIM_MAC_LEN; i++)
		diff |= a[i] ^ b[i];
	return diff == 0;
}
