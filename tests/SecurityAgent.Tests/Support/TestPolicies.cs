namespace SecurityAgent.Tests.Support;

/// <summary>Policy YAML for tests, always scoped to binaries and paths inside the test's own temp dir.</summary>
public static class TestPolicies
{
    public static string OpenatKill(string name, string binary, string pathPrefix, string mode = "enforce", string action = "Sigkill") => $"""
        apiVersion: securityagent.io/v1alpha1
        kind: TracingPolicy
        metadata:
          name: {name}
        spec:
          options:
          - name: policy-mode
            value: {mode}
          tracepoints:
          - subsystem: syscalls
            event: sys_enter_openat
            args:
            - index: 6
              type: string
            selectors:
            - matchArgs:
              - index: 6
                operator: Prefix
                values: ["{pathPrefix}"]
              matchBinaries:
              - operator: In
                values: ["{binary}"]
              matchActions:
              - action: {action}
        """;

    public static string SyscallKprobeKill(string name, string binary, string pathPrefix) => SyscallOpenat(name, binary, "Prefix", pathPrefix, "Sigkill");

    /// <summary>A kprobe on sys_openat (syscall: true) whose one selector matches the file name with <paramref name="op"/>
    /// <paramref name="value"/> for <paramref name="binary"/>; <paramref name="action"/> null: Post, the default.</summary>
    public static string SyscallOpenat(string name, string binary, string op, string value, string? action = null) => $"""
        apiVersion: cilium.io/v1alpha1
        kind: TracingPolicy
        metadata:
          name: {name}
        spec:
          kprobes:
          - call: sys_openat
            syscall: true
            args:
            - index: 1
              type: string
            selectors:
            - matchArgs:
              - index: 1
                operator: {op}
                values: ["{value}"]
              matchBinaries:
              - operator: In
                values: ["{binary}"]
        """ + (action is null ? "" : $"""

              matchActions:
              - action: {action}
        """);
}

public static class ConnectPolicies
{
    /// <param name="declareSocket">Declare the hook's socket as index 0, as Tetragon's policies do.</param>
    public static string Deny(string name, string binary, int port, int errno, bool declareSocket = false) => $"""
        apiVersion: cilium.io/v1alpha1
        kind: TracingPolicy
        metadata:
          name: {name}
        spec:
          lsmhooks:
          - hook: socket_connect
            args:{(declareSocket ? "\n    - index: 0\n      type: socket" : "")}
            - index: 1
              type: sockaddr
            selectors:
            - matchBinaries:
              - operator: In
                values: ["{binary}"]
              matchArgs:
              - index: 1
                operator: DAddr
                values: ["127.0.0.1/32"]
              - index: 1
                operator: DPort
                values: ["{port}"]
              matchActions:
              - action: Override
                argError: {errno}
        """;
}
