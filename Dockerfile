# Multi-stage: build the BPF objects and the agent, then a runtime image with only what the agent needs.
FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
RUN apt-get update && apt-get install -y --no-install-recommends clang-19 llvm-19 libbpf-dev bpftool linux-libc-dev make && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN make bpf BPF_SKIP_DEPS=1 && dotnet publish src/SecurityAgent/SecurityAgent.csproj -c Release -o /out

FROM mcr.microsoft.com/dotnet/aspnet:10.0 AS runtime
RUN apt-get update && apt-get install -y --no-install-recommends libbpf1 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out /opt/secagent
# Policies are not part of the image: they are mounted here (deploy/: the securityagent-policies ConfigMap).
RUN mkdir -p /etc/secagent/policies && chmod 0755 /etc/secagent/policies
# Needs, on the host: root with CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN (privileged in the DaemonSet), hostPID,
# and /sys/kernel/tracing, /sys/fs/bpf, /sys/kernel/security, /proc mounted.
# One malloc arena: libbpf's BTF parsing at load and the runtime's threads otherwise leave a 64 MiB-reserved arena per
# thread that touched malloc (measured: 111 -> 100 MB RSS idle). The process cannot set this for itself.
ENV MALLOC_ARENA_MAX=1
ENTRYPOINT ["/opt/secagent/secagent"]
CMD ["run"]
