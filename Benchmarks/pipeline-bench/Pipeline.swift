import BenchmarkSupport
import Foundation
import Logging
import TwinBenchSupport
import TwinflowCodec
import TwinflowKafka

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The whole pipeline on one devbroker, every service the release binary beside this one on the
/// contract's topics: twin-service with `devices` thermostats each in a room (``TwinFixture``),
/// ingress, the propagator, tsi-forwarder and tsi-store.
final class Pipeline {
    static let kcatTopic = "pipeline-bench.kcat"

    let fixture: TwinFixture
    let partitions: Int
    let ingress: ServiceChild
    let propagator: ServiceChild
    let forwarder: ServiceChild
    let store: ServiceChild
    /// Released before the broker stops, so it does not log the broker's going.
    private var admin: KafkaAdmin?
    let logger: Logger

    init(devices: Int, partitions: Int, logger: Logger) async throws {
        self.partitions = partitions
        self.logger = logger
        fixture = try await TwinFixture(rooms: devices, partitions: partitions, topics: [Self.kcatTopic])
        let bootstrap = fixture.devbroker.bootstrap
        let data = fixture.dataDirectory.path
        // Paused while the measured messages are produced and kcat runs: its session must outlast that.
        let session = ProcessInfo.processInfo.environment["KAFKA_CONFIG_SESSION_TIMEOUT_MS"] ?? "60000"
        ingress = try ServiceChild(
            "ingress", environment: ["KAFKA_BOOTSTRAP_SERVERS": bootstrap, "TWINS_URL": fixture.twinsURL, "KAFKA_CONFIG_SESSION_TIMEOUT_MS": session])
        forwarder = try ServiceChild("tsi-forwarder", environment: ["KAFKA_BOOTSTRAP_SERVERS": bootstrap, "TWINFLOW_DATA_DIR": data])
        store = try ServiceChild("tsi-store", environment: ["KAFKA_BOOTSTRAP_SERVERS": bootstrap, "TWINFLOW_DATA_DIR": data])
        propagator = try await fixture.startPropagator()
        for service in [ingress, forwarder, store] { try await service.waitUntilAnswering("/readyz", within: .seconds(120)) }
        admin = try KafkaAdmin(configuration: fixture.kafka, logger: logger)
    }

    var services: [ServiceChild] { [fixture.twinService, ingress, propagator, forwarder, store] }

    func checkRunning() throws {
        for service in services { try service.checkRunning() }
    }

    func stop() {
        for service in [ingress, propagator, forwarder, store] { service.stop() }
        admin = nil
        fixture.stop()
    }

    static func deviceID(_ index: Int) -> String { TwinFixture.thermostatID(index) }

    /// A device message as IoT Hub delivers it, its body's `Temperature` the message's unique `value`.
    static func message(device: String, value: Int, enqueued: Int64) -> KafkaProducerMessage {
        DeviceMessage(
            deviceID: device, enqueuedTime: TimeSeriesTime.string(milliseconds: enqueued), messageID: "m-\(value)",
            body: ["Temperature": .double(Double(value))]
        ).kafkaMessage(topic: Topics.defaults.deviceMessages)
    }

    func producer(_ properties: [String: String] = [:]) throws -> KafkaProducer {
        try KafkaProducer(
            configuration: KafkaProducerConfiguration(
                kafka: KafkaConfiguration(bootstrapServers: fixture.devbroker.bootstrap, properties: properties), clientID: "pipeline-bench"),
            logger: logger)
    }

    /// The counts the benchmark reads while the pipeline runs.
    var counts: PipelineCounts {
        get throws {
            guard let admin else { throw BenchmarkError("the pipeline was stopped") }
            return PipelineCounts(
                admin: admin, partitions: partitions, ingressPort: ingress.httpPort, propagatorPort: propagator.httpPort, storePort: store.httpPort)
        }
    }

    /// `POST /timeseries/query` on tsi-store at `port`.
    static func query(port: Int, _ body: JSONValue) async throws -> JSONValue {
        try await postJSON("http://127.0.0.1:\(port)/timeseries/query", body)
    }

    /// The broker's raw pass-through: `kcat -C` reads the first `count` messages of `iothub.d2c` and
    /// `kcat -P` writes them to another topic with Twinflow's producer properties; messages per
    /// second from the start of both until the producing kcat exited, every message acknowledged.
    func kcatPassThrough(count: Int) async throws -> Double {
        let pipe = Pipe()
        let bootstrap = fixture.devbroker.bootstrap
        let reader = try KcatProcess([
            "-C", "-b", bootstrap, "-t", Topics.defaults.deviceMessages, "-o", "beginning", "-e", "-q", "-c", "\(count)", "-f", "%k\t%s\n",
        ])
        reader.process.standardOutput = pipe
        let settings = KafkaProducerConfiguration.defaultProperties.sorted { $0.key < $1.key }.flatMap { ["-X", "\($0.key)=\($0.value)"] }
        let writer = try KcatProcess(["-P", "-b", bootstrap, "-t", Self.kcatTopic, "-K", "\t"] + settings)
        writer.process.standardInput = pipe
        writer.process.standardOutput = FileHandle.nullDevice
        let start = ContinuousClock.now
        try reader.run()
        try writer.run()
        try reader.waitForSuccess()
        try writer.waitForSuccess()
        let elapsed = (ContinuousClock.now - start).seconds
        let copied = try await counts.count(Self.kcatTopic)
        guard copied == count else { throw BenchmarkError("kcat copied \(copied) of \(count) device messages") }
        return Double(count) / elapsed
    }
}

/// Messages on a topic and counters of the services, read without a consumer taking CPU from them.
struct PipelineCounts: Sendable {
    var admin: KafkaAdmin
    var partitions: Int
    var ingressPort: Int
    var propagatorPort: Int
    var storePort: Int

    /// Messages on `topic`: the sum of its partitions' high watermarks (what the broker acknowledged).
    func count(_ topic: String) async throws -> Int {
        Int(try await admin.highWatermarks(topic: topic, partitions: partitions).reduce(0, +))
    }

    /// The sum of counters `names` in the `/metrics` at `port` (a counter it does not show counts 0).
    func counters(port: Int, _ names: [String]) async throws -> Int {
        try await metricsCounters(port: port, names)
    }
}
