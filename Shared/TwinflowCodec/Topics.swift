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

    /// What makes a topic name unusable, with the variable that set it.
    public struct Problem: Sendable, Hashable {
        public var variable: String
        public var value: String
        public var expected: String
    }

    /// The first name that cannot serve: one Kafka refuses (1 to 249 of `a-z A-Z 0-9 . _ -`, not
    /// `.` or `..`), or one that names the same topic as another role (a service would read its own
    /// output, dead letters among them). `nil` when every name can serve.
    public var problem: Problem? {
        let roles = zip(Self.defaults.all, all).map { (variable: Self.variable(for: $0), name: $1) }
        for (index, role) in roles.enumerated() {
            guard Self.isLegal(role.name) else {
                return Problem(variable: role.variable, value: role.name, expected: "a Kafka topic name: 1 to 249 of a-z A-Z 0-9 . _ -")
            }
            if let earlier = roles[..<index].first(where: { $0.name == role.name }) {
                return Problem(variable: role.variable, value: role.name, expected: "a topic of its own, not \(earlier.variable)'s")
            }
        }
        return nil
    }

    static func isLegal(_ name: String) -> Bool {
        (1...249).contains(name.utf8.count) && name != "." && name != ".."
            && name.utf8.allSatisfy { byte in
                (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                    || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_")
                    || byte == UInt8(ascii: "-")
            }
    }

    /// `eventgrid.twin-events` → `TWINFLOW_TOPIC_EVENTGRID_TWIN_EVENTS`.
    public static func variable(for defaultName: String) -> String {
        "TWINFLOW_TOPIC_" + String(defaultName.uppercased().map { $0 == "." || $0 == "-" ? "_" : $0 })
    }
}
