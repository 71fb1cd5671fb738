import Synchronization

/// What ingress did with the messages it consumed, counted once each (after the batch's outputs
/// were delivered), served at `GET /metrics` in Prometheus' text format.
public final class IngressCounters: Sendable {
    /// Why a message produced no command.
    public enum Refusal: String, Sendable, CaseIterable {
        case notJSON = "not JSON"
        case notADeviceMessage = "not a device message"
        case noDeviceID = "no device ID"
        case unknownDevice = "unknown device"
        case valueDoesNotFit = "value does not fit"
        /// The broker refused the message's command (too large).
        case commandRefused = "command refused by the broker"
    }

    public struct Counts: Sendable, Hashable {
        public var commands = 0
        /// Messages with nothing for the mapping: no mapped field and no telemetry to publish.
        public var nothingMapped = 0
        public var deadLettered: [Refusal: Int] = [:]

        public init() {}

        public mutating func add(_ other: Counts) {
            commands += other.commands
            nothingMapped += other.nothingMapped
            deadLettered.merge(other.deadLettered, uniquingKeysWith: +)
        }
    }

    private let counts = Mutex(Counts())

    public init() {}

    public var current: Counts { counts.withLock { $0 } }

    func add(_ batch: Counts) {
        counts.withLock { $0.add(batch) }
    }

    /// The counts in Prometheus' text format.
    public var prometheusText: String {
        let counts = current
        var text = "# TYPE twinflow_ingress_commands_total counter\ntwinflow_ingress_commands_total \(counts.commands)\n"
        text += "# TYPE twinflow_ingress_nothing_mapped_total counter\ntwinflow_ingress_nothing_mapped_total \(counts.nothingMapped)\n"
        text += "# TYPE twinflow_ingress_dead_letters_total counter\n"
        for refusal in Refusal.allCases {
            text += "twinflow_ingress_dead_letters_total{reason=\"\(refusal.rawValue)\"} \(counts.deadLettered[refusal] ?? 0)\n"
        }
        return text
    }
}
