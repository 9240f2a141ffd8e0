using Google.Protobuf;
using SecurityAgent.Events;
using SecurityAgent.Export;
using SecurityAgent.Export.Otlp;
using SecurityAgent.Export.Otlp.Proto;
using SecurityAgent.Processes;

namespace SecurityAgent.Tests.Unit;

/// <summary>The encoding checked byte by byte against the OTLP specification's field numbers and wire types,
/// independently of the .proto definitions the agent (and the test receiver) use.</summary>
public class OtlpWireTests
{
    private static byte Tag(int field, int wireType) => (byte)((field << 3) | wireType);

    [Fact]
    public void A_log_record_uses_the_specifications_field_numbers()
    {
        var r = new LogRecord { TimeUnixNano = 1, SeverityNumber = SeverityNumber.Info, Body = new AnyValue { StringValue = "b" }, EventName = "e" };
        r.Attributes.Add(new KeyValue { Key = "k", Value = new AnyValue { IntValue = 7 } });
        var bytes = r.ToByteArray();
        Assert.Equal(Tag(1, 1), bytes[0]);                                           // time_unix_nano: fixed64, field 1
        Assert.Contains(Tag(2, 0), bytes);                                           // severity_number: varint, field 2
        int body = Array.IndexOf(bytes, Tag(5, 2));                                  // body: AnyValue, field 5
        Assert.Equal([Tag(5, 2), 3, Tag(1, 2), 1, (byte)'b'], bytes[body..(body + 5)]); // AnyValue.string_value = field 1
        int attr = Array.IndexOf(bytes, Tag(6, 2));                                  // attributes: KeyValue, field 6
        Assert.Equal([Tag(6, 2), 7, Tag(1, 2), 1, (byte)'k', Tag(2, 2), 2, Tag(3, 0), 7], bytes[attr..(attr + 9)]); // key 1, value 2, int_value 3
        Assert.Equal([Tag(12, 2), 1, (byte)'e'], bytes[^3..]);                       // event_name: field 12
    }

    [Fact]
    public void A_request_nests_resource_logs_scope_logs_and_records_as_the_collector_expects()
    {
        var p = new ProcessInfo { ExecId = "x", Pid = 42, StartTime = 1, Ktime = 1, Binary = "/bin/ls", Args = ["ls", "-l"], Cwd = "/", Creds = new Credentials(0, 0, 0, 0), Origin = ProcessOrigin.Exec };
        var record = OtlpMapping.ToLogRecord(new ProcessExecEvent(1, p, null), "{}", new BootClock(0));
        var bytes = OtlpMapping.Request([record], OtlpOptions.ResourceAttributes("node-1", kubernetes: false)).ToByteArray();
        Assert.Equal(Tag(1, 2), bytes[0]);                          // ExportLogsServiceRequest.resource_logs = 1
        var rl = ResourceLogs.Parser.ParseFrom(Unwrap(bytes));
        Assert.Equal("node-1", rl.Resource.Attributes.Single(a => a.Key == "host.name").Value.StringValue);
        var lr = rl.ScopeLogs.Single().LogRecords.Single();          // ResourceLogs.scope_logs = 2, ScopeLogs.log_records = 2
        Assert.Equal(42, lr.Attributes.Single(a => a.Key == "process.pid").Value.IntValue);
        Assert.Equal(["ls", "-l"], lr.Attributes.Single(a => a.Key == "process.command_args").Value.ArrayValue.Values.Select(v => v.StringValue));
    }

    private static byte[] Unwrap(byte[] lengthDelimited)
    {
        var input = new CodedInputStream(lengthDelimited);
        input.ReadTag();
        return input.ReadBytes().ToByteArray();
    }
}
