/*
 * test/fuzz/claim_codec_fuzz.c -- libFuzzer target for src/claim_codec.c,
 * the text of row-security claims.
 *
 * Any input:
 *   - DdClaimDecode must not read past it or crash, and a text it accepts
 *     must be exactly what the encoder makes of the decoded fields (one
 *     text per claim, so a claim cannot be re-spelled around its MAC);
 *   - fields taken from the input (key id, expiry, a user id of 1 to 1024
 *     bytes, a MAC) must encode to a text that decodes to the same fields;
 *   - DdClaimMacEqual must agree with memcmp.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "claim_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static DdClaim c;
	static DdClaim back;
	static char text[DD_CLAIM_MAX_TEXT_LEN + 1];
	char	   *copy;
	size_t		n;

	copy = malloc(size ? size : 1);
	memcpy(copy, data, size);
	if (DdClaimDecode(copy, size, &c) == DD_CLAIM_OK)
	{
		if (c.user_id_len < 1 || c.user_id_len > DD_CLAIM_MAX_USER_BYTES)
			abort();
		n = DdClaimEncodeSigned(c.key_id, c.expires, DdClaimUserId(&c),
								c.user_id_len, text);
		if (n != c.signed_len || memcmp(text, copy, n) != 0)
			abort();
		n = DdClaimAppendMac(text, n, c.mac);
		if (n != size || memcmp(text, copy, size) != 0)
			abort();
	}
	free(copy);

	if (size >= 12 + DD_CLAIM_MAC_LEN + 1)
	{
		uint32_t	key_id = 0;
		uint64_t	expires = 0;
		const uint8_t *mac = data + 12;
		const char *user = (const char *) data + 12 + DD_CLAIM_MAC_LEN;
		size_t		user_len = size - 12 - DD_CLAIM_MAC_LEN;
		int			i;

		if (user_len > DD_CLAIM_MAX_USER_BYTES)
			user_len = DD_CLAIM_MAX_USER_BYTES;
		for (i = 0; i < 4; i++)
			key_id = (key_id << 8) | data[i];
		for (i = 0; i < 8; i++)
			expires = (expires << 8) | data[4 + i];
		n = DdClaimEncodeSigned(key_id, (int64_t) expires, user, user_len, text);
		n = DdClaimAppendMac(text, n, mac);
		if (n > DD_CLAIM_MAX_TEXT_LEN ||
			DdClaimDecode(text, n, &back) != DD_CLAIM_OK ||
			back.key_id != key_id || back.expires != (int64_t) expires ||
			back.user_id_len != user_len ||
			memcmp(DdClaimUserId(&back), user, user_len) != 0 ||
			memcmp(back.mac, mac, DD_CLAIM_MAC_LEN) != 0)
			abort();
		if (!DdClaimMacEqual(back.mac, mac) ||
			DdClaimMacEqual(back.mac, data) != (memcmp(back.mac, data, DD_CLAIM_MAC_LEN) == 0))
			abort();
	}
	return 0;
}
