/*-------------------------------------------------------------------------
 *
 * codec_tap.h
 *	  What the standalone codec tests share: TAP output (ok) and a
 *	  fixed-seed random generator, so every run checks the same inputs and
 *	  a failure can be replayed.
 *
 *	  Included once by each test program in test/codec/.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CODEC_TAP_H
#define CODEC_TAP_H

#include <stdint.h>
#include <stdio.h>

static int	test_no = 0;
static int	failures = 0;

/* ok: one TAP line; a false cond counts as a failure. */
static inline void
ok(int cond, const char *what)
{
	test_no++;
	if (!cond)
		failures++;
	printf("%sok %d - %s\n", cond ? "" : "not ", test_no, what);
}

/* next_random: splitmix64 from a fixed seed. */
static uint64_t rng_state = 0x6464636c69707065ull;

static inline uint64_t
next_random(void)
{
	uint64_t	z = (rng_state += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

#endif							/* CODEC_TAP_H */
