/*-------------------------------------------------------------------------
 *
 * claim_codec.h
 *	  The text form of a row-security claim (a signed "this transaction acts
 *	  for user U until time T"), in plain C with no PostgreSQL dependency,
 *	  so it can be tested and fuzzed on its own (test/codec/, test/fuzz/).
 *	  The signature itself (HMAC-SHA256 under a server-side secret) is made
 *	  and checked by src/row_security.c; this file only lays out the bytes.
 *
 * Layout (ASCII):
 *
 *	  ddc1.PPPP...PPPP.MMMM...MMMM
 *	  |    |           |
 *	  |    |           43 base64url characters: the 32-byte HMAC-SHA256 of
 *	  |    |           everything before the second dot, under key key_id
 *	  |    base64url (unpadded) of the payload:
 *	  |        key_id   4 bytes, big-endian
 *	  |        expires  8 bytes, big-endian (PostgreSQL TimestampTz:
 *	  |                 microseconds since 2000-01-01 00:00 UTC)
 *	  |        user_id  1 to DD_CLAIM_MAX_USER_BYTES bytes
 *	  prefix and format version
 *
 * Decoding is strict: the prefix, exactly two dots, every character in the
 * base64url alphabet, the spare bits of the last character zero, the
 * lengths in range.  So one claim has one text.
 *
 *-------------------------------------------------------------------------
 */
#ifndef DD_CLAIM_CODEC_H
#define DD_CLAIM_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DD_CLAIM_PREFIX			"ddc1."
#define DD_CLAIM_PREFIX_LEN		5
#define DD_CLAIM_MAC_LEN		32
#define DD_CLAIM_MAC_TEXT_LEN	43	/* base64url of 32 bytes, unpadded */
#define DD_CLAIM_HEADER_LEN		12	/* key_id and expires */
#define DD_CLAIM_MAX_USER_BYTES 1024	/* 256 characters of up to 4 bytes */
#define DD_CLAIM_MAX_PAYLOAD	(DD_CLAIM_HEADER_LEN + DD_CLAIM_MAX_USER_BYTES)
/* base64url of the largest payload, and the whole text */
#define DD_CLAIM_MAX_PAYLOAD_TEXT	((DD_CLAIM_MAX_PAYLOAD * 4 + 2) / 3)
#define DD_CLAIM_MAX_TEXT_LEN	(DD_CLAIM_PREFIX_LEN + DD_CLAIM_MAX_PAYLOAD_TEXT + 1 + DD_CLAIM_MAC_TEXT_LEN)

typedef struct DdClaim
{
	uint32_t	key_id;
	int64_t		expires;		/* TimestampTz */
	size_t		user_id_len;
	size_t		signed_len;		/* bytes of the text the MAC covers */
	uint8_t		mac[DD_CLAIM_MAC_LEN];
	uint8_t		payload[DD_CLAIM_MAX_PAYLOAD];	/* user_id at + HEADER_LEN */
} DdClaim;

#define DdClaimUserId(c)	((const char *) (c)->payload + DD_CLAIM_HEADER_LEN)

typedef enum DdClaimStatus
{
	DD_CLAIM_OK = 0,
	DD_CLAIM_MALFORMED			/* not the layout above */
} DdClaimStatus;

/*
 * DdClaimEncodeSigned: write the part the MAC covers ("ddc1." and the
 * payload in base64url) into out, NUL-terminated; returns its length.  out
 * needs DD_CLAIM_MAX_TEXT_LEN + 1 bytes; user_id_len must be 1 to
 * DD_CLAIM_MAX_USER_BYTES (else 0 is returned and nothing written).
 *
 * DdClaimAppendMac: append "." and the MAC in base64url to the signed part
 * of len bytes in out; returns the whole length.
 */
extern size_t DdClaimEncodeSigned(uint32_t key_id, int64_t expires,
								  const char *user_id, size_t user_id_len,
								  char *out);
extern size_t DdClaimAppendMac(char *out, size_t len,
							   const uint8_t mac[DD_CLAIM_MAC_LEN]);

/* Parse text of len bytes (not necessarily NUL-terminated) into *claim. */
extern DdClaimStatus DdClaimDecode(const char *text, size_t len,
								   DdClaim *claim);

/* Compare two MACs in time that does not depend on where they differ. */
extern bool DdClaimMacEqual(const uint8_t a[DD_CLAIM_MAC_LEN],
							const uint8_t b[DD_CLAIM_MAC_LEN]);

#endif							/* DD_CLAIM_CODEC_H */
