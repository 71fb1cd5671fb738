import Foundation
import Logging
import TwinflowKafka

/// kafka-bench: sends and receives N messages of about 200 bytes through devbroker with Twinflow's
/// Kafka layer, and does the same work with kcat in the same run, for comparison.
///
///     swift build -c release && .build/release/kafka-bench [--messages N] [--size BYTES] [--partitions N]
let arguments = BenchmarkArguments(CommandLine.arguments.dropFirst())
var logger = Logger(label: "kafka-bench")
logger.logLevel = .warning

let devbroker = try DevBrokerChild(partitions: arguments.partitions, topics: ["bench.swift", "bench.kcat"])
defer { devbroker.stop() }
let workload = Workload(count: arguments.messages, size: arguments.size)
print("kafka-bench: \(arguments.messages) messages of \(arguments.size) bytes, \(arguments.partitions) partitions, devbroker at \(devbroker.bootstrap)")

let kcatProduce = try workload.kcatProduce(bootstrap: devbroker.bootstrap, topic: "bench.kcat")
let swiftProduce = try await workload.swiftProduce(bootstrap: devbroker.bootstrap, topic: "bench.swift", logger: logger)
let kcatConsume = try workload.kcatConsume(bootstrap: devbroker.bootstrap, topic: "bench.kcat")
let swiftConsume = try await workload.swiftConsume(bootstrap: devbroker.bootstrap, topic: "bench.swift", logger: logger)

func rate(_ seconds: Double) -> Double { Double(arguments.messages) / seconds }
let rows: [(String, Double, Double)] = [
    ("produce", rate(swiftProduce), rate(kcatProduce)),
    ("consume", rate(swiftConsume), rate(kcatConsume)),
]
print("")
print("| work    | Twinflow msgs/s | kcat msgs/s | Twinflow / kcat |")
print("|---------|-----------------|-------------|-----------------|")
for (work, swift, kcat) in rows {
    let ratio = String(format: "%.0f%%", swift / kcat * 100)
    print("| \(work.padding(toLength: 7, withPad: " ", startingAt: 0)) | \(String(format: "%15.0f", swift)) | \(String(format: "%11.0f", kcat)) | \(ratio.leftPadding(15)) |")
}
let summary: [String: Double] = [
    "messages": Double(arguments.messages),
    "message_bytes": Double(arguments.size),
    "swift_produce_msgs_per_s": rate(swiftProduce).rounded(),
    "swift_consume_msgs_per_s": rate(swiftConsume).rounded(),
    "kcat_produce_msgs_per_s": rate(kcatProduce).rounded(),
    "kcat_consume_msgs_per_s": rate(kcatConsume).rounded(),
    "kcat_msgs_per_s": rate(kcatProduce).rounded(),
    "produce_ratio": (rate(swiftProduce) / rate(kcatProduce) * 1000).rounded() / 1000,
    "consume_ratio": (rate(swiftConsume) / rate(kcatConsume) * 1000).rounded() / 1000,
]
let json = try JSONSerialization.data(withJSONObject: summary, options: [.sortedKeys])
print(String(decoding: json, as: UTF8.self))

extension String {
    func leftPadding(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
