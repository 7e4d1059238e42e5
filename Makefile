# lightws: `make` builds the C library and tools; `make test` installs
# missing dependencies and runs every suite; `make demo` runs the echo demo.
# Area fragments live in mk/*.mk (tools, lua, python, interop, conformance,
# fuzz, bench); each adds its targets to TEST_TARGETS.

PREFIX ?= /usr/local
DESTDIR ?=
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
BUILD := build
CC ?= cc
SOVERSION := 0
VERSION := 0.1.0

# permessage-deflate needs zlib (pkg-config zlib); `make ZLIB=0` builds
# without it: lightws_pmd_available() is then 0 and nothing links -lz.
ZLIB ?= 1
ifeq ($(ZLIB),0)
ZLIB_CFLAGS := -DLIGHTWS_HAVE_ZLIB=0
ZLIB_LIBS :=
else
ZLIB_CFLAGS := -DLIGHTWS_HAVE_ZLIB=1 $(shell pkg-config --cflags zlib 2>/dev/null)
ZLIB_LIBS := $(shell pkg-config --libs zlib 2>/dev/null || echo -lz)
endif
# Objects rebuild when ZLIB changes (the value is kept in build/zlib.cfg).
ZLIB_CFG := $(BUILD)/zlib.cfg
$(shell mkdir -p $(BUILD) && { echo '$(ZLIB)' | cmp -s - $(ZLIB_CFG) || echo '$(ZLIB)' > $(ZLIB_CFG); })

WARN := -Wall -Wextra -pedantic -Wshadow -Wmissing-prototypes -Wstrict-prototypes
CFLAGS ?= -O2 -g
LIB_CFLAGS := -std=c99 -D_POSIX_C_SOURCE=200809L $(WARN) -Ilib/include -Ilib $(ZLIB_CFLAGS) $(CFLAGS)

LIB_SRCS := $(wildcard lib/*.c)
LIB_HDRS := lib/include/lightws.h lib/internal.h $(ZLIB_CFG)
LIB_OBJS := $(LIB_SRCS:lib/%.c=$(BUILD)/obj/%.o)
LIB_PIC_OBJS := $(LIB_SRCS:lib/%.c=$(BUILD)/pic/%.o)

CHECK_CFLAGS := $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null)
TEST_SRCS := $(wildcard tests/check_*.c)
SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

TEST_TARGETS := test-c test-c-asan test-c-valgrind test-c-nozlib test-c-noalloc test-install

.PHONY: test-install all lib tools install uninstall clean test deps demo check test-c test-c-asan test-c-valgrind test-c-nozlib test-c-noalloc

all: lib tools

# mk/tools.mk adds the tool binaries as prerequisites.
tools: lib

lib: $(BUILD)/liblightws.a $(BUILD)/liblightws.so $(BUILD)/lightws.pc

$(BUILD)/obj/%.o: lib/%.c $(LIB_HDRS)
	@mkdir -p $(@D)
	$(CC) $(LIB_CFLAGS) -c $< -o $@

$(BUILD)/pic/%.o: lib/%.c $(LIB_HDRS)
	@mkdir -p $(@D)
	$(CC) $(LIB_CFLAGS) -fPIC -fvisibility=default -c $< -o $@

$(BUILD)/liblightws.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/liblightws.so: $(LIB_PIC_OBJS)
	$(CC) -shared -Wl,-soname,liblightws.so.$(SOVERSION) -o $(BUILD)/liblightws.so.$(VERSION) $(LIB_PIC_OBJS) $(ZLIB_LIBS)
	ln -sf liblightws.so.$(VERSION) $(BUILD)/liblightws.so.$(SOVERSION)
	ln -sf liblightws.so.$(VERSION) $@

# The .pc names the install paths, so `make install PREFIX=...` writes its own.
# Built with zlib, static links get -lz through Requires.private.
PC_REQUIRES := $(if $(filter 0,$(ZLIB)),,Requires.private: zlib\n)
write_pc = printf 'prefix=%s\nlibdir=%s\nincludedir=%s\n\nName: lightws\nDescription: websocket (RFC 6455) library for stream transmission, no allocation\nVersion: %s\n$(PC_REQUIRES)Libs: -L$${libdir} -llightws\nCflags: -I$${includedir}\n' \
	  '$(PREFIX)' '$(LIBDIR)' '$(INCLUDEDIR)' '$(VERSION)' > $(1)

$(BUILD)/lightws.pc: Makefile $(ZLIB_CFG)
	@mkdir -p $(@D)
	$(call write_pc,$@)

install: lib
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR)
	install -m 644 lib/include/lightws.h $(DESTDIR)$(INCLUDEDIR)/
	install -m 644 $(BUILD)/liblightws.a $(DESTDIR)$(LIBDIR)/
	install -m 755 $(BUILD)/liblightws.so.$(VERSION) $(DESTDIR)$(LIBDIR)/
	ln -sf liblightws.so.$(VERSION) $(DESTDIR)$(LIBDIR)/liblightws.so.$(SOVERSION)
	ln -sf liblightws.so.$(VERSION) $(DESTDIR)$(LIBDIR)/liblightws.so
	$(call write_pc,$(DESTDIR)$(LIBDIR)/pkgconfig/lightws.pc)

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/lightws.h $(DESTDIR)$(LIBDIR)/liblightws.* \
	  $(DESTDIR)$(LIBDIR)/pkgconfig/lightws.pc

# --- C tests (check) ---------------------------------------------------
$(BUILD)/check_lightws: $(TEST_SRCS) tests/check_lightws.h $(BUILD)/liblightws.a
	$(CC) -std=c99 -D_POSIX_C_SOURCE=200809L $(WARN) -Wno-missing-prototypes -Ilib/include -Ilib -Itests $(ZLIB_CFLAGS) $(CFLAGS) $(CHECK_CFLAGS) \
	  $(TEST_SRCS) $(BUILD)/liblightws.a $(CHECK_LIBS) $(ZLIB_LIBS) -o $@

# The sanitizer build masks with SSE2 only (LIGHTWS_NO_AVX2), so the tests
# run both masking loops on a machine that has AVX2.
$(BUILD)/asan/check_lightws: $(TEST_SRCS) tests/check_lightws.h $(LIB_SRCS) $(LIB_HDRS)
	@mkdir -p $(@D)
	$(CC) -std=c99 -D_POSIX_C_SOURCE=200809L $(WARN) -Wno-missing-prototypes -Ilib/include -Ilib -Itests -O1 -g $(SAN) -DLIGHTWS_NO_AVX2 $(ZLIB_CFLAGS) $(CHECK_CFLAGS) \
	  $(TEST_SRCS) $(LIB_SRCS) $(CHECK_LIBS) $(ZLIB_LIBS) -o $@

test-c: $(BUILD)/check_lightws
	$(BUILD)/check_lightws

test-c-asan: $(BUILD)/asan/check_lightws
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 $(BUILD)/asan/check_lightws

test-c-valgrind: $(BUILD)/check_lightws
	CK_FORK=no LIGHTWS_TEST_QUICK=1 valgrind --error-exitcode=1 -q --leak-check=full $(BUILD)/check_lightws

# The C suite of a build without zlib (objects in build/nozlib): the
# deflate tests expect LIGHTWS_ERR_UNSUPPORTED there.
test-c-nozlib:
	$(MAKE) --no-print-directory ZLIB=0 BUILD=$(BUILD)/nozlib $(BUILD)/nozlib/check_lightws
	$(BUILD)/nozlib/check_lightws

# The shared library calls no allocator (zlib's own symbols come from
# libz; zlib allocates only through the hooks set before its init).
test-c-noalloc: $(BUILD)/liblightws.so
	@if nm -u $(BUILD)/liblightws.so | grep -wE 'malloc|calloc|realloc|free|aligned_alloc|posix_memalign'; then \
	  echo "liblightws.so calls an allocator"; exit 1; else echo "ok    liblightws.so calls no allocator"; fi

check: test-c

# install + pkg-config + the README quick start against lightws-echo
test-install: all
	bash tests/install.sh

deps:
	bash scripts/deps.sh

include $(wildcard mk/*.mk)

# Every suite, after dependencies; the order runs the fast C suites first.
# Each suite runs even when an earlier one failed (as make -k); a line per
# suite gives its time, so the whole run's budget stays visible.
test: deps
	$(MAKE) all
	@failed=""; t0=$$(date +%s); \
	for t in $(TEST_TARGETS); do \
	  s=$$(date +%s); \
	  if $(MAKE) --no-print-directory $$t; then r=ok; else r=FAILED; failed="$$failed $$t"; fi; \
	  echo "test: $$t $$r in $$(( $$(date +%s) - s )) s"; \
	done; \
	echo "test: all suites in $$(( $$(date +%s) - t0 )) s$${failed:+; FAILED:$$failed}"; \
	[ -z "$$failed" ]

clean:
	rm -rf $(BUILD) bindings/python/lightws/*.so bindings/python/lightws/_lightws.c bindings/lua/*.so bindings/lua/*.o
