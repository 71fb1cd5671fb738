import ArgumentParser
import Foundation
import Logging
import TwinflowCodec
import TwinflowKafka

/// `twinctl watch`: the running stack at a glance, refreshed: each room's `currentTemp` beside its
/// thermostat's last reading, each topic's rate, each consumer group's lag, the dead letters, and
/// where the APIs answer.
struct WatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "watch", abstract: "Show rooms, stage rates, consumer lag and dead letters, live.")

    @OptionGroup var service: ServiceOptions
    @OptionGroup var kafka: KafkaOptions
    @Option(help: "Seconds between refreshes.") var interval = 2.0
    @Option(help: "Print this many screens, then stop (0: until interrupted).") var screens = 0
    @Option(help: "The most rooms shown.") var rooms = 12
    @Option(help: "Where tsi-store answers (TSI_URL).") var tsiURL = ProcessInfo.processInfo.environment["TSI_URL"] ?? "http://localhost:8084"

    func validate() throws {
        guard interval.isFinite, interval > 0, interval <= 86_400 else { throw ValidationError("--interval must be seconds from above 0 to 86400") }
        guard screens >= 0 else { throw ValidationError("--screens must not be negative") }
        guard rooms >= 1 else { throw ValidationError("--rooms must be at least 1") }
    }

    /// Each stage: the topic it writes and the group that reads it.
    static func stages(_ topics: Topics) -> [(label: String, topic: String, group: String)] {
        [
            ("devices → \(topics.deviceMessages) → ingress", topics.deviceMessages, "ingress"),
            ("ingress, propagator → \(topics.twinCommands) → twin-service", topics.twinCommands, "twin-service"),
            ("twin-service → \(topics.twinEvents) → propagator", topics.twinEvents, "propagator"),
            ("twin-service → \(topics.telemetry) → tsi-forwarder", topics.telemetry, "tsi-forwarder"),
            ("tsi-forwarder → \(topics.timeSeries) → tsi-store", topics.timeSeries, "tsi-store"),
        ]
    }

    func run() async throws {
        var logger = Logger(label: "twinctl")
        logger.logLevel = .critical
        let admin = try KafkaAdmin(configuration: kafka.configuration, logger: logger)
        let topics = Topics.fromEnvironment(ProcessInfo.processInfo.environment)
        let terminal = isatty(STDOUT_FILENO) != 0
        var previous: (time: ContinuousClock.Instant, totals: [String: Int64])?
        var shown = 0
        while screens == 0 || shown < screens {
            let now = ContinuousClock.now
            var lines: [String] = []
            lines.append("Twinflow  \(Timestamp.now())   (Ctrl-C stops watching)")
            lines.append("")
            lines += await roomLines()
            lines.append("")
            var totals: [String: Int64] = [:]
            lines.append(Self.row("stage", "msgs/s", "lag"))
            for stage in Self.stages(topics) {
                let topic = stage.topic
                do {
                    let partitions = try await admin.metadata().topic(named: topic)?.partitionCount ?? 0
                    let ends = try await admin.highWatermarks(topic: topic, partitions: partitions)
                    let committed = try await admin.committedOffsets(group: stage.group, topic: topic, partitions: partitions)
                    totals[topic] = ends.reduce(0, +)
                    let lag = zip(ends, committed).map { end, done in max(0, end - (done ?? 0)) }.reduce(0, +)
                    var rate = "-"
                    if let previous, let before = previous.totals[topic] {
                        rate = String(format: "%.1f", Double(totals[topic]! - before) / (now - previous.time).seconds)
                    }
                    lines.append(Self.row(stage.label, rate, "\(lag)"))
                } catch {
                    lines.append(Self.row(stage.label, "?", "? (\(error))"))
                }
            }
            let deadPartitions = (try? await admin.metadata().topic(named: topics.deadLetter)?.partitionCount) ?? 0
            let dead = (try? await admin.highWatermarks(topic: topics.deadLetter, partitions: deadPartitions).reduce(0, +)) ?? 0
            lines.append("")
            lines.append("dead letters: \(dead)   (twinctl tail \(topics.deadLetter) --from-beginning)")
            lines.append(
                "twin-service REST: \(service.url)   tsi-store queries: \(tsiURL)/timeseries/query   Kafka: \(kafka.configuration.bootstrapServers)")
            FileHandle.standardOutput.write(Data(((terminal ? "\u{1B}[H\u{1B}[2J" : "") + lines.joined(separator: "\n") + "\n").utf8))
            previous = (now, totals)
            shown += 1
            if screens == 0 || shown < screens { try await Task.sleep(for: .seconds(interval)) }
        }
    }

    private func roomLines() async -> [String] {
        let query = "SELECT Room, T FROM DIGITALTWINS Room JOIN T RELATED Room.rel_has_thermostat"
        do {
            let page = try await service.client.send(.post, "/query", body: ["query": .string(query)])
            let rows = (page["value"]?.arrayValue ?? []).sorted {
                ($0["Room"]?["$dtId"]?.stringValue ?? "") < ($1["Room"]?["$dtId"]?.stringValue ?? "")
            }
            var lines = [Self.row("room", "currentTemp", "thermostat (Temperature)")]
            for row in rows.prefix(rooms) {
                let room = row["Room"]
                let thermostat = row["T"]
                lines.append(
                    Self.row(
                        room?["$dtId"]?.stringValue ?? "?", Self.number(room?["currentTemp"]),
                        "\(thermostat?["$dtId"]?.stringValue ?? "?") (\(Self.number(thermostat?["Temperature"])))"))
            }
            if rows.count > rooms { lines.append("… and \(rows.count - rooms) more rooms") }
            if rows.isEmpty { lines.append("no rooms with thermostats yet") }
            return lines
        } catch {
            return ["twin-service does not answer at \(service.url): \(error)"]
        }
    }

    private static func number(_ value: JSONValue?) -> String {
        guard let number = value?.doubleValue else { return "-" }
        return String(format: "%.2f", number)
    }

    private static func row(_ first: String, _ second: String, _ third: String) -> String {
        first.padding(toLength: 52, withPad: " ", startingAt: 0) + " " + second.padding(toLength: 12, withPad: " ", startingAt: 0) + " " + third
    }
}
