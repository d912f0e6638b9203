# Makefile for dd_clipper (PGXS)
#
#   make && make install              build and install into pg_config's tree
#   scripts/test.sh                   every test against a throwaway cluster
#   make installcheck                 pg_regress + isolation against $PGHOST/$PGPORT

EXTENSION = dd_clipper
EXTVERSION = $(shell sed -n "s/^default_version[[:space:]]*=[[:space:]]*'\([^']*\)'.*/\1/p" $(EXTENSION).control)

MODULE_big = dd_clipper
OBJS = dd_clipper.o $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))

DATA = $(sort $(wildcard extension/$(EXTENSION)--*.sql))

# The Convex importer, installed beside psql (pg_config --bindir).
SCRIPTS = bin/dd_convex_import

# One pg_regress file per capability; every file creates and drops the
# extension itself, so the files are independent of each other's order.
REGRESS = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
REGRESS_OPTS = --inputdir=.
ISOLATION = $(patsubst specs/%.spec,%,$(sort $(wildcard specs/*.spec)))
ISOLATION_OPTS = --inputdir=.

# Warnings are errors.  PostgreSQL's own headers are not -Wextra clean for
# unused parameters (PG_FUNCTION_ARGS) and sign comparisons, as in pgvector.
PG_CPPFLAGS = -I$(srcdir)/src
PG_CFLAGS = -Wall -Wextra -Werror -Wno-unused-parameter -Wno-sign-compare \
	-Wno-missing-field-initializers

EXTRA_CLEAN = results/ output_iso/ regression.diffs regression.out tmp_check/ \
	tmp_install/

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

.PHONY: print-version
print-version:
	@echo $(EXTVERSION)
