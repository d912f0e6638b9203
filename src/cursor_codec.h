/*-------------------------------------------------------------------------
 *
 * cursor_codec.h
 *	  The dd_clips_page cursor: an opaque, versioned, checksummed page
 *	  position, in plain C with no PostgreSQL dependency so it can be
 *	  tested and fuzzed on its own (test/codec/).
 *
 *-------------------------------------------------------------------------
 */
#ifndef DD_CURSOR_CODEC_H
#define DD_CURSOR_CODEC_H

#include <stddef.h>
#include <stdint.h>

/* Format version written in every cursor; a cursor of another is refused. */
#define DD_CURSOR_FORMAT		1

/* Bytes before base64url, and characters after (no padding). */
#define DD_CURSOR_RAW_LEN		35
#define DD_CURSOR_TEXT_LEN		47

#define DD_CURSOR_KEY_LEN		16

/* Flags */
#define DD_CURSOR_HAS_POSITION	0x01

typedef struct DdCursor
{
	uint8_t		sort;			/* the caller's sort code, 0..255 */
	uint8_t		flags;			/* DD_CURSOR_HAS_POSITION or 0 (start) */
	uint64_t	query_hash;		/* keyed hash of the query it belongs to */
	uint64_t	key1;			/* first sort key: timestamp or float bits */
	int64_t		id;				/* the clip id, the tie breaker */
} DdCursor;

typedef enum DdCursorStatus
{
	DD_CURSOR_OK = 0,
	DD_CURSOR_MALFORMED,		/* wrong length or a character outside base64url */
	DD_CURSOR_BAD_FORMAT,		/* well formed, but of an unknown format version */
	DD_CURSOR_BAD_CHECKSUM,		/* changed since it was made (or another key) */
	DD_CURSOR_BAD_FLAGS			/* unknown flag bits (cannot happen unless forged) */
} DdCursorStatus;

/* SipHash-2-4 of data under a 16-byte key. */
extern uint64_t dd_siphash24(const uint8_t key[DD_CURSOR_KEY_LEN],
							 const void *data, size_t len);

/*
 * Encode cursor into out (DD_CURSOR_TEXT_LEN characters and a NUL, so out
 * must have DD_CURSOR_TEXT_LEN + 1 bytes).
 */
extern void dd_cursor_encode(const DdCursor *cursor,
							 const uint8_t key[DD_CURSOR_KEY_LEN], char *out);

/* Decode text of len bytes into *cursor; anything but OK leaves it unset. */
extern DdCursorStatus dd_cursor_decode(const char *text, size_t len,
									   const uint8_t key[DD_CURSOR_KEY_LEN],
									   DdCursor *cursor);

#endif							/* DD_CURSOR_CODEC_H */
