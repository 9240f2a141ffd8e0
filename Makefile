# SecurityAgent. A newcomer needs two commands: `make run` and `make test` (both pull in the rest).
SHELL := /bin/bash
CLANG ?= clang-19
STRIP ?= llvm-strip-19
CONFIG ?= Release
BPF_OUT := build/bpf
BPF_SRC := $(filter-out bpf/contract.bpf.c,$(wildcard bpf/*.bpf.c))
BPF_OBJ := $(patsubst bpf/%.bpf.c,$(BPF_OUT)/%.bpf.o,$(BPF_SRC))
BPF_HDR := $(wildcard bpf/include/*.h)
CONTRACT_OBJ := build/bpf-contract/contract.bpf.o
CONTRACT_CS := src/SecurityAgent/Events/Contract.g.cs
CONTRACT_GEN := tools/ContractGen/bin/$(CONFIG)/net10.0/ContractGen.dll
APP_OUT := build/app
SYSCALLS := build/syscalls/x86_64.txt build/syscalls/i386.txt
DOTNET_FLAGS := --nologo -c $(CONFIG)
APT_PKGS := clang-19 llvm-19 libbpf-dev bpftool libc6-dev

.PHONY: all deps bpf build run test vmtest bench bench-quick bench-pipeline bench-rate bench-kbuild crds vmlinux fuzz clean policy-scale

all: build

## deps: install the toolchain (idempotent; root on Debian/Ubuntu, otherwise prints what to install)
deps:
	@missing=""; \
	for c in clang-19 llvm-strip-19 bpftool; do command -v $$c >/dev/null || missing=1; done; \
	[ -e /usr/include/bpf/libbpf.h ] && [ -e /usr/lib/x86_64-linux-gnu/libc.a ] || missing=1; \
	ldconfig -p | grep -q 'libbpf.so.1 ' || missing=1; \
	command -v dotnet >/dev/null || { echo "Install the .NET 10 SDK (https://dot.net) first."; exit 1; }; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing $(APT_PKGS)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PKGS) >/dev/null; \
	  else \
	    echo "Missing toolchain. Install, as root: apt-get install -y $(APT_PKGS)"; exit 1; \
	  fi; \
	fi

## bpf: compile bpf/*.bpf.c (CO-RE, against the committed bpf/include/vmlinux.h), then emit the C# side of
## bpf/include/contract.h (src/SecurityAgent/Events/Contract.g.cs, committed; a test fails when it drifts)
bpf: $(if $(BPF_SKIP_DEPS),,deps) $(BPF_OBJ) $(SYSCALLS) $(CONTRACT_CS)

# usdt.bpf.h includes <linux/errno.h>, whose <asm/errno.h> is under the multiarch include directory.
$(BPF_OUT)/%.bpf.o: bpf/%.bpf.c $(BPF_HDR)
	@mkdir -p $(BPF_OUT)
	$(CLANG) -g -O2 -Wall -Werror -target bpf -D__TARGET_ARCH_x86 -Ibpf/include -idirafter /usr/include/x86_64-linux-gnu -c $< -o $@
	$(STRIP) -g $@

$(CONTRACT_OBJ): bpf/contract.bpf.c $(BPF_HDR)
	@mkdir -p $(dir $@)
	$(CLANG) -g -O2 -Wall -Werror -target bpf -D__TARGET_ARCH_x86 -Ibpf/include -c $< -o $@
	$(STRIP) -g $@

$(CONTRACT_GEN): $(wildcard tools/ContractGen/*.cs) tools/ContractGen/ContractGen.csproj
	dotnet build tools/ContractGen/ContractGen.csproj $(DOTNET_FLAGS) -v quiet

$(CONTRACT_CS): $(CONTRACT_OBJ) $(BPF_OBJ) $(CONTRACT_GEN)
	dotnet $(CONTRACT_GEN) $(CONTRACT_OBJ) $(BPF_OUT) $@
	@touch $@

BPF_TEST_OBJ := $(patsubst tests/bpf/%.bpf.c,build/bpf-test/%.bpf.o,$(wildcard tests/bpf/*.bpf.c))
build/bpf-test/%.bpf.o: tests/bpf/%.bpf.c $(BPF_HDR)
	@mkdir -p build/bpf-test
	$(CLANG) -g -O2 -target bpf -D__TARGET_ARCH_x86 -Ibpf/include -c $< -o $@

## workload programs (benchmarks and tests): the same native code in every configuration
WORKLOADS := $(patsubst bench/workloads/%.c,build/bench/%,$(wildcard bench/workloads/*.c))
TEST_TOOLS := $(WORKLOADS)
build/bench/%: bench/workloads/%.c
	@mkdir -p build/bench
	cc -O2 -Wall -pthread -o $@ $<

## syscall numbers for `list:` references in policies, from the kernel's uapi header (linux-libc-dev)
## (i386: the 32-bit ABI, the __ia32_sys_* entries of syscalls lists)
build/syscalls/x86_64.txt: /usr/include/x86_64-linux-gnu/asm/unistd_64.h
	@mkdir -p build/syscalls
	awk '/^#define __NR_/ { sub("__NR_", "", $$2); print $$2, $$3 }' $< > $@

build/syscalls/i386.txt: /usr/include/x86_64-linux-gnu/asm/unistd_32.h
	@mkdir -p build/syscalls
	awk '/^#define __NR_/ { sub("__NR_", "", $$2); print $$2, $$3 }' $< > $@

## vmlinux: regenerate bpf/include/vmlinux.h from this machine's kernel BTF
vmlinux:
	bpftool btf dump file /sys/kernel/btf/vmlinux format c > bpf/include/vmlinux.h

## build: BPF objects + the .NET solution; leaves bin/secagent
build: bpf
	dotnet build SecurityAgent.sln $(DOTNET_FLAGS) -v quiet
	dotnet publish src/SecurityAgent/SecurityAgent.csproj $(DOTNET_FLAGS) --no-build -o $(APP_OUT) -v quiet
	@mkdir -p bin && ln -sf ../$(APP_OUT)/secagent bin/secagent
	@echo "built bin/secagent"

## run: the agent as root with defaults (policies/ in monitor mode, JSON events to stdout; build output to stderr);
## MALLOC_ARENA_MAX=1: one malloc arena (-11 MB RSS idle), which the process cannot set for itself
run:
	@$(MAKE) --no-print-directory build 1>&2
	@if [ "$$(id -u)" != 0 ]; then echo "re-running as root"; exec sudo env MALLOC_ARENA_MAX=1 bin/secagent run --policy-dir policies --export-file -; fi; \
	exec env MALLOC_ARENA_MAX=1 bin/secagent run --policy-dir policies --export-file -

## test: unit + real-kernel integration tests (as root), then the VM lane; non-zero on any failure
test: build $(BPF_TEST_OBJ) $(TEST_TOOLS)
	@dotnet test SecurityAgent.sln $(DOTNET_FLAGS) --no-build --logger "console;verbosity=normal" 2>&1 | tee build/test.log; \
	  rc=$${PIPESTATUS[0]}; \
	  tests/vm/run 2>&1 | tee build/vmtest.log; vrc=$${PIPESTATUS[0]}; \
	  tools/test-summary build/test.log build/vmtest.log; \
	  [ $$rc = 0 ] && [ $$vrc = 0 ]

## bench: overhead and throughput vs. no agent, auditd and bpftrace, interleaved (root; not part of CI)
bench: build $(WORKLOADS)
	dotnet bench/SecurityAgent.Bench/bin/$(CONFIG)/net10.0/SecurityAgent.Bench.dll --full

## bench-pipeline: the user-space cost per exported event (decode, enrich, decide, JSON export) in process, without the
## kernel: no root or kernel lock needed; run as the agent runs (no tiered compilation); N_EVENTS=... (default 1000000)
bench-pipeline: build
	DOTNET_TieredCompilation=0 dotnet bench/SecurityAgent.Bench/bin/$(CONFIG)/net10.0/SecurityAgent.Bench.dll --pipeline $(N_EVENTS)

## bench-rate: only the event pipeline's row (1, 2, 4 writers, policy matching every open, JSON to a file; root, lock);
## COMPARE=other/build/app/secagent.dll measures another build beside this one in the same run; VARIANT="--opt value" this build
## with those agent options beside it (one variant); WRITERS=4,8 other writer counts
bench-rate: build $(WORKLOADS)
	dotnet bench/SecurityAgent.Bench/bin/$(CONFIG)/net10.0/SecurityAgent.Bench.dll --pipeline-rate --quick $(if $(COMPARE),--compare $(COMPARE)) $(if $(VARIANT),--variant "$(VARIANT)") $(if $(WRITERS),--writers $(WRITERS))

## bench-kbuild: only the full bench's kernel build row (Linux 6.1 tinyconfig, no agent / lifecycle / shipped policies,
## two rounds in mirrored order: ~25 min; root, lock); writes bench/results/kernel-build.*
bench-kbuild: build $(WORKLOADS)
	dotnet bench/SecurityAgent.Bench/bin/$(CONFIG)/net10.0/SecurityAgent.Bench.dll --kernel-build

## bench-quick: the same, fewer repetitions and smaller workloads (under 3 minutes)
bench-quick: build $(WORKLOADS)
	dotnet bench/SecurityAgent.Bench/bin/$(CONFIG)/net10.0/SecurityAgent.Bench.dll --quick

## fuzz: N mutated policies (default 1000000) through the policy front end; fails on any exception, input over 1 s or
## diagnostic without file:line:column (a few thousand run in `make test`). Findings go to build/fuzz/findings.
N ?= 1000000
SEED ?= 1
fuzz: build
	dotnet tests/fuzz/bin/$(CONFIG)/net10.0/secagent-fuzz.dll --count $(N) --seed $(SEED)

## crds: deploy/crds/crds.yaml from schemas/tracingpolicy.schema.json (a test fails when the two drift)
crds: build
	bin/secagent crds schemas/tracingpolicy.schema.json > deploy/crds/crds.yaml

## vmtest: the tests needing BPF LSM, kprobes or fentry, in Debian's 6.1 kernel under qemu (tests/vm)
vmtest: build $(BPF_TEST_OBJ) $(TEST_TOOLS)
	tests/vm/run

## policy-scale: per-call cost of the open loop with 0, 1, 8 and 64 non-matching policies on sys_enter_openat (root)
policy-scale: build $(WORKLOADS)
	tools/policy-scale

clean:
	rm -rf build bin src/*/bin src/*/obj tests/*/bin tests/*/obj tools/*/bin tools/*/obj
