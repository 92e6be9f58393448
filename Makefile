# qdb - terminal debugger for post-training quantization.
# Targets: all deps run test bench asan fuzz clean   (see README.md)

# C compiler and flags. ARCH picks the instruction set of this machine: qdb is
# built where it runs; set ARCH= for a portable build.
CC      ?= gcc
ARCH    ?= -march=native
OPT     ?= -O2
CFLAGS  ?= $(OPT) $(ARCH) -g
WARN    := -std=c11 -Wall -Wextra -Werror -Wno-format-truncation -D_GNU_SOURCE
# Libraries, found through pkg-config.
PKGS    := openblas libprotobuf-c libcjson ncursesw zlib libpng libjpeg
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
LDLIBS  := $(PKG_LIBS) -lpthread -lm
# Where the ONNX protobuf schema comes from (Debian's libonnx-dev).
ONNX_PROTO ?= /usr/include/onnx/onnx.proto
# Build output.
B       := build
# Node test data (Debian's libonnx-testdata).
ONNX_TESTDATA ?= /usr/include/onnx/backend/test/data
# Seconds per fuzz target for `make fuzz`.
FUZZ_SECONDS ?= 30

ENGINE_SRC   := $(sort $(wildcard engine/*.c))
SESSIONS_SRC := $(sort $(wildcard sessions/*.c))
VIZ_SRC      := $(sort $(wildcard viz/*.c))
TUI_SRC      := $(sort $(wildcard tui/*.c))
LIB_SRC      := $(ENGINE_SRC) $(SESSIONS_SRC) $(VIZ_SRC) $(TUI_SRC)
GEN_C        := $(B)/gen/onnx.pb-c.c
GEN_H        := $(B)/gen/onnx.pb-c.h

# Variant builds put objects under $(B)/<variant>/.
V        ?= rel
OBJDIR   := $(B)/$(V)
LIB_OBJ  := $(LIB_SRC:%.c=$(OBJDIR)/%.o) $(OBJDIR)/gen/onnx.pb-c.o
TEST_SRC := $(sort $(wildcard tests/test_*.c))
TEST_BIN := $(TEST_SRC:tests/%.c=$(OBJDIR)/tests/%)
INC      := -I. -Iengine -Isessions -I$(B)/gen $(PKG_CFLAGS)

.PHONY: all deps run test bench asan fuzz clean tests-bin
.DEFAULT_GOAL := all

all: qdb

qdb: $(OBJDIR)/qdb
	cp $< $@

$(OBJDIR)/qdb: $(OBJDIR)/main.o $(LIB_OBJ)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(GEN_C) $(GEN_H): $(ONNX_PROTO)
	@mkdir -p $(B)/gen
	protoc-c --c_out=$(B)/gen -I$(dir $(ONNX_PROTO)) $(ONNX_PROTO)

# Generated code: compiled without -Werror (its warnings are not ours).
$(OBJDIR)/gen/onnx.pb-c.o: $(GEN_C)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -std=c11 -w $(INC) -c -o $@ $<

$(OBJDIR)/%.o: %.c | $(GEN_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(WARN) $(INC) -MMD -MP -c -o $@ $<

$(OBJDIR)/tests/%: tests/%.c $(LIB_OBJ) tests/harness.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(WARN) $(INC) -MMD -MP -o $@ $< $(LIB_OBJ) $(LDLIBS)

tests-bin: $(OBJDIR)/qdb $(TEST_BIN)

deps:
	@bash .ci/deps

# The main job on the bundled demo model. Until the TUI exists (issue 9):
# its layer table and its FP32 accuracy on the Fashion-MNIST test set.
DEMO ?= models/lenet.onnx
run: deps all
	./qdb info $(DEMO)
	./qdb eval $(DEMO) --data fashion-mnist --threads 2

# Tests use the binary of this build variant (build/asan/qdb under make asan).
test: tests-bin
	@QDB=$(OBJDIR)/qdb QDB_BUILD=$(OBJDIR) ONNX_TESTDATA=$(ONNX_TESTDATA) bash tests/run

bench: tests-bin
	@QDB=$(OBJDIR)/qdb QDB_BUILD=$(OBJDIR) bash tests/bench

# AddressSanitizer + UndefinedBehaviorSanitizer build of everything, then the tests.
asan:
	$(MAKE) V=asan OPT=-O1 CFLAGS="-O1 -g $(ARCH) -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" LDFLAGS="-fsanitize=address,undefined" test

# libFuzzer harnesses (clang), each run for FUZZ_SECONDS on its seed corpus.
FUZZ_SRC := $(sort $(wildcard tests/fuzz_*.c))
fuzz:
	$(MAKE) V=fuzz CC=clang WARN="$(WARN) -Wno-unknown-warning-option" CFLAGS="-O1 -g $(ARCH) -fsanitize=fuzzer-no-link,address,undefined" LDFLAGS="-fsanitize=address,undefined" $(LIB_OBJ:$(OBJDIR)/%=$(B)/fuzz/%)
	@for f in $(FUZZ_SRC); do n=$$(basename $$f .c); \
	  clang -O1 -g $(ARCH) -fsanitize=fuzzer,address,undefined $(WARN) -Wno-unknown-warning-option $(INC) -o $(B)/fuzz/$$n $$f \
	    $(LIB_OBJ:$(OBJDIR)/%=$(B)/fuzz/%) $(LDLIBS) || exit 1; \
	  mkdir -p $(B)/fuzz/corpus-$$n; \
	  echo "fuzz: $$n for $(FUZZ_SECONDS)s"; \
	  ASAN_OPTIONS=allocator_may_return_null=1 $(B)/fuzz/$$n -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	    $(B)/fuzz/corpus-$$n tests/corpus/$${n#fuzz_} 2>$(B)/fuzz/$$n.log || { tail -40 $(B)/fuzz/$$n.log; exit 1; }; \
	  grep -E "stat::number_of_executed_units|Done" $(B)/fuzz/$$n.log | head -2; \
	done

clean:
	rm -rf $(B) qdb

-include $(shell find $(B) -name '*.d' 2>/dev/null)
