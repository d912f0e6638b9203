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
#include "b64url.h"

#include <string.h>

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
	n += dd_b64url_encode(payload, DD_CLAIM_HEADER_LEN + user_id_len, out + n);
	out[n] = '\0';
	return n;
}

size_t
DdClaimAppendMac(char *out, size_t len, const uint8_t mac[DD_CLAIM_MAC_LEN])
{
	out[len++] = '.';
	len += dd_b64url_encode(mac, DD_CLAIM_MAC_LEN, out + len);
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

	n = dd_b64url_decode(payload_text, payload_len, claim->payload,
					  DD_CLAIM_MAX_PAYLOAD);
	if (n < DD_CLAIM_HEADER_LEN + 1)
		return DD_CLAIM_MALFORMED;
	if (dd_b64url_decode(dot + 1, DD_CLAIM_MAC_TEXT_LEN, claim->mac,
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
