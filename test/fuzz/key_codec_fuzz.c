/*
 * test/fuzz/key_codec_fuzz.c -- libFuzzer target for src/key_codec.c.
 *
 * Any input:
 *   - DdKeyDecode must not read past it or crash (AddressSanitizer and
 *     UndefinedBehaviorSanitizer watch), and a text it accepts must be the
 *     one text DdKeyEncode gives for the decoded bytes (one text per key);
 *   - the input's first 32 bytes, read as a key's random part, must encode
 *     to a 53-character text that decodes back to the same bytes, and the
 *     same text with any one character changed must be refused.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "key_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t		bytes[DD_KEY_RANDOM_BYTES];
	char		text[DD_KEY_LEN + 1];
	char	   *copy;

	/* Decode the input exactly as given (a private copy, so ASan sees overreads). */
	copy = malloc(size ? size : 1);
	memcpy(copy, data, size);
	if (DdKeyDecode(copy, size, bytes))
	{
		DdKeyEncode(bytes, text);
		if (size != DD_KEY_LEN || memcmp(text, copy, DD_KEY_LEN) != 0)
			abort();			/* accepted a text that is not the canonical one */
	}
	free(copy);
	(void) DdKeyCrc32(data, size);

	/* Round trip of bytes taken from the input. */
	if (size >= DD_KEY_RANDOM_BYTES)
	{
		uint8_t		back[DD_KEY_RANDOM_BYTES];
		size_t		pos;

		DdKeyEncode(data, text);
		if (strlen(text) != DD_KEY_LEN || !DdKeyDecode(text, DD_KEY_LEN, back) ||
			memcmp(back, data, DD_KEY_RANDOM_BYTES) != 0)
			abort();
		/* One character changed, where the input's next byte says. */
		pos = size > DD_KEY_RANDOM_BYTES ? data[DD_KEY_RANDOM_BYTES] % DD_KEY_LEN : 0;
		text[pos] = text[pos] == 'A' ? 'B' : 'A';
		if (DdKeyDecode(text, DD_KEY_LEN, back))
			abort();
	}
	return 0;
}
