/// The contract's topic names, each overridable by `TWINFLOW_TOPIC_<NAME>` where NAME is the default
/// name upper-cased with `.` and `-` as `_` (`TWINFLOW_TOPIC_EVENTGRID_TWIN_EVENTS`).
public struct Topics: Sendable, Hashable {
    /// IoT Hub device-to-cloud messages; key = device ID.
    public var deviceMessages: String
    /// Commands for the twin service; key = twin ID.
    public var twinCommands: String
    /// ADT change notifications, CloudEvents structured mode; key = twin ID.
    public var twinEvents: String
    /// Twin telemetry, CloudEvents binary mode; key = twin ID.
    public var telemetry: String
    /// Time-series events for the store; key = time-series ID (twin ID).
    public var timeSeries: String
    /// Messages no service could handle, untouched, with the reason in headers.
    public var deadLetter: String

    public static let defaults = Topics(
        deviceMessages: "iothub.d2c",
        twinCommands: "twins.commands",
        twinEvents: "eventgrid.twin-events",
        telemetry: "eventhub.telemetry",
        timeSeries: "eventhub.tsi",
        deadLetter: "deadletter"
    )

    /// Every topic, in the contract's order.
    public var all: [String] { [deviceMessages, twinCommands, twinEvents, telemetry, timeSeries, deadLetter] }

    /// The defaults with any `TWINFLOW_TOPIC_*` overrides applied.
    public static func fromEnvironment(_ environment: [String: String]) -> Topics {
        func name(_ defaultName: String) -> String {
            environment[variable(for: defaultName)] ?? defaultName
        }
        let defaults = Topics.defaults
        return Topics(
            deviceMessages: name(defaults.deviceMessages),
            twinCommands: name(defaults.twinCommands),
            twinEvents: name(defaults.twinEvents),
            telemetry: name(defaults.telemetry),
            timeSeries: name(defaults.timeSeries),
            deadLetter: name(defaults.deadLetter)
        )
    }

    /// `eventgrid.twin-events` → `TWINFLOW_TOPIC_EVENTGRID_TWIN_EVENTS`.
    public static func variable(for defaultName: String) -> String {
        "TWINFLOW_TOPIC_" + String(defaultName.uppercased().map { $0 == "." || $0 == "-" ? "_" : $0 })
    }
}
