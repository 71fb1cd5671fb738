import BenchmarkSupport
import Foundation
import Logging
import TwinflowKafka

/// kafka-bench: sends and receives N messages of about 200 bytes through devbroker with Twinflow's
/// Kafka layer, and does the same work with kcat in the same run, for comparison.
///
///     swift build -c release && .build/release/kafka-bench [--messages N] [--size BYTES] [--partitions N]
await runBenchmark("kafka-bench") {
    let arguments = BenchmarkArguments(CommandLine.arguments.dropFirst())
    var logger = Logger(label: "kafka-bench")
    logger.logLevel = .warning

    let topics = (1...arguments.rounds).flatMap { ["bench.swift.\($0)", "bench.kcat.\($0)"] }
    let devbroker = try DevBrokerChild(partitions: arguments.partitions, topics: topics)
    defer { devbroker.stop() }
    let workload = try Workload(count: arguments.messages, size: arguments.size, losingOne: arguments.losingOne)
    defer { try? FileManager.default.removeItem(at: workload.kcatInput) }
    print(
        "kafka-bench: \(arguments.messages) messages of \(arguments.size) bytes, \(arguments.partitions) partitions, \(arguments.rounds) rounds (median reported), devbroker at \(devbroker.bootstrap)"
    )
    /// How each side is timed, the same for Twinflow and kcat.
    let produceTiming = "from the client's start to its last delivery (Twinflow: producer created, all delivered, closed; kcat -P: the whole process)"
    let consumeTiming = "from the first message received to the last (Twinflow's group join and kcat's start not counted)"
    if arguments.losingOne { print("--lose-one: one message is left unsent, so the consumers must report it lost") }

    // Seconds per round for each measurement; the sides take turns going first.
    var kcatProduceRuns: [Double] = []
    var swiftProduceRuns: [Double] = []
    var kcatConsumeRuns: [ConsumeRun] = []
    var swiftConsumeRuns: [ConsumeRun] = []
    for round in 1...arguments.rounds {
        let bootstrap = devbroker.bootstrap
        if round % 2 == 1 {
            kcatProduceRuns.append(try workload.kcatProduce(bootstrap: bootstrap, topic: "bench.kcat.\(round)"))
            swiftProduceRuns.append(try await workload.swiftProduce(bootstrap: bootstrap, topic: "bench.swift.\(round)", logger: logger))
            kcatConsumeRuns.append(try workload.kcatConsume(bootstrap: bootstrap, topic: "bench.kcat.\(round)"))
            swiftConsumeRuns.append(try await workload.swiftConsume(bootstrap: bootstrap, topic: "bench.swift.\(round)", logger: logger))
        } else {
            swiftProduceRuns.append(try await workload.swiftProduce(bootstrap: bootstrap, topic: "bench.swift.\(round)", logger: logger))
            kcatProduceRuns.append(try workload.kcatProduce(bootstrap: bootstrap, topic: "bench.kcat.\(round)"))
            swiftConsumeRuns.append(try await workload.swiftConsume(bootstrap: bootstrap, topic: "bench.swift.\(round)", logger: logger))
            kcatConsumeRuns.append(try workload.kcatConsume(bootstrap: bootstrap, topic: "bench.kcat.\(round)"))
        }
        func perSecond(_ seconds: Double) -> Int { Int(Double(arguments.messages) / seconds) }
        print(
            "round \(round): produce Twinflow \(perSecond(swiftProduceRuns.last!))/s kcat \(perSecond(kcatProduceRuns.last!))/s; consume Twinflow \(Int(swiftConsumeRuns.last!.messagesPerSecond))/s kcat \(Int(kcatConsumeRuns.last!.messagesPerSecond))/s"
        )
    }

    func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
    let kcatProduce = median(kcatProduceRuns)
    let swiftProduce = median(swiftProduceRuns)
    let kcatConsumeRate = median(kcatConsumeRuns.map(\.messagesPerSecond))
    let swiftConsumeRate = median(swiftConsumeRuns.map(\.messagesPerSecond))

    func rate(_ seconds: Double) -> Double { Double(arguments.messages) / seconds }
    let rows: [(String, Double, Double)] = [
        ("produce", rate(swiftProduce), rate(kcatProduce)),
        ("consume", swiftConsumeRate, kcatConsumeRate),
    ]
    print("")
    print("| work    | Twinflow msgs/s | kcat msgs/s | Twinflow / kcat |")
    print("|---------|-----------------|-------------|-----------------|")
    for (work, swift, kcat) in rows {
        let ratio = String(format: "%.0f%%", swift / kcat * 100)
        print(
            "| \(work.padding(toLength: 7, withPad: " ", startingAt: 0)) | \(String(format: "%15.0f", swift)) | \(String(format: "%11.0f", kcat)) | \(ratio.leftPadding(15)) |"
        )
    }
    print("")
    print("produce timed on both sides \(produceTiming)")
    print("consume timed on both sides \(consumeTiming)")
    let summary: [String: Any] = [
        "messages": arguments.messages,
        "rounds": arguments.rounds,
        "message_bytes": arguments.size,
        "produce_timing": "client start to last delivery",
        "consume_timing": "first message to last",
        "swift_produce_msgs_per_s": rate(swiftProduce).rounded(),
        "swift_consume_msgs_per_s": swiftConsumeRate.rounded(),
        "kcat_produce_msgs_per_s": rate(kcatProduce).rounded(),
        "kcat_consume_msgs_per_s": kcatConsumeRate.rounded(),
        "kcat_msgs_per_s": rate(kcatProduce).rounded(),
        "produce_ratio": (rate(swiftProduce) / rate(kcatProduce) * 1000).rounded() / 1000,
        "consume_ratio": (swiftConsumeRate / kcatConsumeRate * 1000).rounded() / 1000,
    ]
    let json = try JSONSerialization.data(withJSONObject: summary, options: [.sortedKeys])
    print(String(decoding: json, as: UTF8.self))
}

extension String {
    func leftPadding(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
