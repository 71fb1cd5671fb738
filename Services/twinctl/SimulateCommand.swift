import ArgumentParser
import Foundation
import Logging
import Synchronization
import TwinflowCodec
import TwinflowKafka

/// `twinctl simulate`: thermostats sending IoT Hub-shaped device messages to `iothub.d2c`.
struct SimulateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Simulate devices: IoT Hub device messages with a Temperature, at a rate, for a duration.")

    enum Pattern: String, ExpressibleByArgument, CaseIterable {
        case constant, ramp, sine
        case randomWalk = "random-walk"
    }

    @OptionGroup var kafka: KafkaOptions
    @Option(help: "How many devices.") var devices = 3
    @Option(help: "Device IDs: the prefix, then a number of four digits (thermo_0001, …).") var prefix = "thermo_"
    @Option(help: "Messages per second, over all devices.") var rate = 10.0
    @Option(help: "Seconds to run; 0 runs until interrupted.") var duration = 0.0
    @Option(help: "The values: \(Pattern.allCases.map(\.rawValue).joined(separator: ", ")).") var pattern = Pattern.sine
    @Option(help: "The value the pattern starts from, or moves around.") var base = 21.0
    @Option(help: "The topic.") var topic = Topics.fromEnvironment(ProcessInfo.processInfo.environment).deviceMessages

    func validate() throws {
        guard (1...9_999).contains(devices) else { throw ValidationError("--devices must be from 1 to 9999 (four-digit device numbers)") }
        guard rate.isFinite, rate > 0, rate <= 1_000_000 else {
            throw ValidationError("--rate must be a number of messages per second from above 0 to 1000000")
        }
        guard duration.isFinite, duration >= 0, duration <= 1e9 else { throw ValidationError("--duration must be seconds from 0 to 1000000000") }
        guard base.isFinite else { throw ValidationError("--base must be a finite number") }
    }

    func run() async throws {
        var logger = Logger(label: "twinctl")
        logger.logLevel = .error
        let producer = try KafkaProducer(configuration: KafkaProducerConfiguration(kafka: kafka.configuration, clientID: "twinctl"), logger: logger)
        let clock = ContinuousClock()
        let start = clock.now
        let progress = isatty(STDERR_FILENO) != 0
        var values = [Double](repeating: base, count: devices)
        var sent = 0
        var lastReport = start
        let total = duration == 0 ? Int.max : Int(duration * rate)
        // Ctrl-C or a TERM ends the run after the batch on its way, which is delivered before the summary.
        let interrupted = Interruption()
        // Every 10 ms, the messages due by then go out as one batch, so the rate holds at any size; once
        // the duration is over, the rest of its messages go out.
        while sent < total, !interrupted.happened {
            try await Task.sleep(for: .milliseconds(10))
            let elapsed = min((clock.now - start).seconds, duration == 0 ? .infinity : duration)
            let due = Int(elapsed * rate) - sent
            guard due > 0 else { continue }
            var batch: [KafkaProducerMessage] = []
            for index in sent..<(sent + due) {
                let device = index % devices
                values[device] = next(values[device], device: device, step: index / devices, elapsed: elapsed)
                let message = DeviceMessage(
                    deviceID: String(format: "%@%04d", prefix, device + 1), enqueuedTime: Timestamp.now(), messageID: UUID().uuidString,
                    body: ["Temperature": .double((values[device] * 100).rounded() / 100)])
                batch.append(message.kafkaMessage(topic: topic))
            }
            try await producer.send(batch)
            sent += due
            if clock.now - lastReport >= .seconds(1) {
                lastReport = clock.now
                let line = "sent \(sent) messages from \(devices) devices, \(String(format: "%.1f", Double(sent) / elapsed))/s"
                FileHandle.standardError.write(Data((progress ? "\r\(line)" : "\(line)\n").utf8))
            }
        }
        await producer.shutdown()
        FileHandle.standardError.write(Data("\(progress ? "\n" : "")sent \(sent) messages to \(topic)\n".utf8))
    }

    private func next(_ current: Double, device: Int, step: Int, elapsed: Double) -> Double {
        switch pattern {
        case .constant: base
        case .ramp: base + Double(step % 100) / 10
        case .sine: base + 3 * sin(2 * .pi * (elapsed / 60 + Double(device) / Double(devices)))
        case .randomWalk: current + Double.random(in: -0.5...0.5)
        }
    }
}

/// Where Kafka is: `--brokers`, else `KAFKA_BOOTSTRAP_SERVERS` (and any `KAFKA_CONFIG_*`).
struct KafkaOptions: ParsableArguments {
    @Option(help: "The brokers (default: $KAFKA_BOOTSTRAP_SERVERS or localhost:9092).") var brokers: String?

    var configuration: KafkaConfiguration {
        var configuration = KafkaConfiguration.fromEnvironment(ProcessInfo.processInfo.environment)
        if let brokers { configuration.bootstrapServers = brokers }
        return configuration
    }
}

/// Whether SIGINT or SIGTERM arrived since it was made. The first is caught; a second one ends the
/// process at once (a send stuck on an unreachable broker would otherwise keep it for minutes).
final class Interruption {
    private final class Flag: Sendable {
        let value = Atomic(false)
    }
    private let flag = Flag()
    private let sources: [any DispatchSourceSignal]

    init() {
        sources = [SIGINT, SIGTERM].map { number in
            signal(number, SIG_IGN)
            return DispatchSource.makeSignalSource(signal: number)
        }
        for source in sources {
            source.setEventHandler { [flag] in
                flag.value.store(true, ordering: .relaxed)
                signal(SIGINT, SIG_DFL)
                signal(SIGTERM, SIG_DFL)
            }
            source.resume()
        }
    }

    var happened: Bool { flag.value.load(ordering: .relaxed) }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
