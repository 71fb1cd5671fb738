import Foundation
import Logging
import Synchronization
import Testing
import TwinflowCodec
import TwinflowKafka
import TwinflowTestSupport

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// devbroker, twin-service, tsi-forwarder and tsi-store as separate processes: telemetry posted to
/// twins comes back out of `aggregateSeries`.
@Suite(.serialized) struct TsiProcessTests {
    static let thermostat = "dtmi:contosocom:DigitalTwins:Thermostat;1"

    /// `POST /digitaltwins/{id}/telemetry` with ADT's headers.
    static func postTelemetry(_ twins: TwinServiceEndpoint, _ twin: String, messageID: String, sourceTime: String, _ payload: String) async throws {
        var request = URLRequest(url: URL(string: "\(twins.url)/digitaltwins/\(twin)/telemetry")!)
        request.httpMethod = "POST"
        request.httpBody = Data(payload.utf8)
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.setValue(messageID, forHTTPHeaderField: "Message-Id")
        request.setValue(sourceTime, forHTTPHeaderField: "Telemetry-Source-Time")
        let (_, response) = try await URLSession.shared.data(for: request)
        let status = (response as? HTTPURLResponse)?.statusCode
        try #require(status == 204, "telemetry of \(twin) answered \(status ?? 0)")
    }

    static func query(port: Int, _ body: JSONValue) async throws -> (status: Int, body: JSONValue) {
        let reply = try await httpRequest("http://127.0.0.1:\(port)/timeseries/query", method: "POST", body: body.serialized())
        return (reply.status, (try? JSONValue.parse(reply.body)) ?? .null)
    }

    /// Runs twinctl; its standard output.
    static func twinctl(_ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = try builtExecutable("twinctl")
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        try #require(process.terminationStatus == 0, "twinctl \(arguments.joined(separator: " ")) exited with \(process.terminationStatus)")
        return String(decoding: data, as: UTF8.self)
    }

    static func values(_ response: JSONValue, _ name: String) -> [JSONValue]? {
        response["properties"]?.arrayValue?.first { $0["name"]?.stringValue == name }?["values"]?.arrayValue
    }

    @Test func telemetryPostedToTwinsComesBackOutOfAggregateSeries() async throws {
        let devbroker = try DevBrokerProcess(partitions: 4)
        defer { devbroker.terminate() }
        let twinPort = unusedPort()
        let twinService = try twinServiceProcess(bootstrap: devbroker.bootstrap, port: twinPort)
        defer { twinService.terminate() }
        let twins = TwinServiceEndpoint(port: twinPort)
        try #require(await twins.waitUntilUp())
        try await twins.uploadModels("seed")
        try await twins.putTwin("thermo_1", model: Self.thermostat, ["Temperature": 0])
        try await twins.putTwin("thermo_2", model: Self.thermostat, ["Temperature": 0])

        let forwarderPort = unusedPort()
        let forwarder = try serviceProcess(
            "tsi-forwarder", bootstrap: devbroker.bootstrap, port: forwarderPort, environment: ["TSI_FORWARDER_TWIN_UPDATES": "true"])
        defer { forwarder.terminate() }
        let storePort = unusedPort()
        let store = try serviceProcess(
            "tsi-store", bootstrap: devbroker.bootstrap, port: storePort,
            environment: ["TWINFLOW_DATA_DIR": ScratchDirectory.make("tsi-store").path])
        defer { store.terminate() }
        try #require(await waitUntilReady(port: forwarderPort))
        try #require(await waitUntilReady(port: storePort, containing: "accepts writes"))
        let reader = try TopicReader(
            kafka: KafkaConfiguration(bootstrapServers: devbroker.bootstrap), topics: [Topics.defaults.timeSeries], logger: Logger(label: "test"))

        // An hour ago, on a whole minute: within the default retention whatever the clock says.
        let base = (Int64(Date().timeIntervalSince1970 * 1000) - 3_600_000) / 60_000 * 60_000
        func at(_ seconds: Int64) -> String { TimeSeriesTime.string(milliseconds: base + seconds * 1000) }
        try await Self.postTelemetry(twins, "thermo_1", messageID: "m1", sourceTime: at(10), #"{"Temperature":20,"Front":{"Temperature":5}}"#)
        try await Self.postTelemetry(twins, "thermo_1", messageID: "m2", sourceTime: at(50), #"{"Temperature":22}"#)
        try await Self.postTelemetry(twins, "thermo_1", messageID: "m3", sourceTime: at(90), #"{"Temperature":30}"#)
        try await Self.postTelemetry(twins, "thermo_1", messageID: "m2", sourceTime: at(50), #"{"Temperature":22}"#)
        try await Self.postTelemetry(twins, "thermo_2", messageID: "m1", sourceTime: at(5), #"{"Temperature":99}"#)
        try await twins.set("thermo_2", ["Temperature": 25])

        let aggregate: JSONValue = [
            "aggregateSeries": [
                "timeSeriesId": ["thermo_1"], "searchSpan": ["from": .string(at(0)), "to": .string(at(180))], "interval": "PT1M",
                "inlineVariables": [
                    "Avg": ["kind": "numeric", "value": ["tsx": "$event.Temperature"], "aggregation": ["tsx": "avg($value)"]],
                    "Front": ["kind": "numeric", "value": ["tsx": "$event.Front.Temperature"], "aggregation": ["tsx": "max($value)"]],
                    "Count": ["kind": "aggregate", "aggregation": ["tsx": "count()"]],
                ],
                "projectedVariables": ["Avg", "Front", "Count"],
            ]
        ]
        let arrived = await eventually(timeout: .seconds(60)) {
            guard let (status, body) = try? await Self.query(port: storePort, aggregate), status == 200 else { return false }
            return Self.values(body, "Count") == [2, 1, 0]
        }
        #expect(arrived, "thermo_1's three readings (one posted twice) reach tsi-store")
        let (status, response) = try await Self.query(port: storePort, aggregate)
        #expect(status == 200)
        #expect(response["timestamps"] == [.string(at(0)), .string(at(60)), .string(at(120))])
        #expect(Self.values(response, "Avg") == [21.0, 30.0, nil])
        #expect(Self.values(response, "Front") == [5.0, nil, nil])

        // twinctl prints the same series as a table.
        let table = try Self.twinctl([
            "series", "thermo_1", "--store", "http://127.0.0.1:\(storePort)", "--from", at(0), "--to", at(180), "--interval", "PT1M", "--agg", "avg",
        ])
        let rows = table.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        #expect(rows.first == ["timestamp", "avg(Temperature)"])
        #expect(rows.dropFirst(2).map { $0.last ?? "" } == ["21", "30", "-"], "\(table)")

        // The Twin.Update of thermo_2 joins its telemetry, at the update's time.
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let events: JSONValue = [
            "getEvents": [
                "timeSeriesId": ["thermo_2"],
                "searchSpan": ["from": .string(at(0)), "to": .string(TimeSeriesTime.string(milliseconds: now + 3_600_000))],
            ]
        ]
        let updated = await eventually(timeout: .seconds(30)) {
            Self.values((try? await Self.query(port: storePort, events))?.body ?? .null, "Temperature") == [99, 25]
        }
        #expect(updated, "thermo_2's telemetry, then its Twin.Update")

        // Every time-series event is keyed by its $dtId.
        let published = try await reader.waitFor(5, on: Topics.defaults.timeSeries, timeout: .seconds(30))
        #expect(published.count >= 5)
        for message in published {
            let event = try TimeSeriesEvent(decoding: message)
            #expect(message.keyString == event.twinID)
            #expect(event.id != nil)
        }
        try await reader.stop()

        let instances = try JSONValue.parse(try await httpRequest("http://127.0.0.1:\(storePort)/timeseries/instances").body)
        #expect(instances["instances"]?.arrayValue?.compactMap { $0["timeSeriesId"]?.arrayValue?.first } == ["thermo_1", "thermo_2"])

        let (badStatus, bad) = try await Self.query(port: storePort, ["aggregateSeries": ["timeSeriesId": ["thermo_1"]]])
        #expect(badStatus == 400)
        #expect(bad["error"]?["code"] == "InvalidInput")
        #expect(bad["error"]?["message"]?.stringValue?.contains("searchSpan") == true)
        let garbled = try await httpRequest("http://127.0.0.1:\(storePort)/timeseries/query", method: "POST", body: Array("{".utf8))
        #expect(garbled.status == 400)
        #expect((try? JSONValue.parse(garbled.body))?["error"]?["code"] == "InvalidInput")

        let metrics = try await httpRequest("http://127.0.0.1:\(storePort)/metrics").text
        #expect(metrics.contains("twinflow_tsi_store_dead_letters_total 0"))
        #expect(forwarder.process.isRunning && store.process.isRunning)
    }

    /// Time-series events `range` of five twins, an event a second from `base`, `Level` = index.
    static func levelEvents(_ range: Range<Int>, base: Int64) -> [KafkaProducerMessage] {
        range.map { index in
            TimeSeriesEvent(
                twinID: "twin-\(index % 5)", timestamp: TimeSeriesTime.string(milliseconds: base + Int64(index) * 100),
                values: ["Level": .integer(Int64(index))], id: "e-\(index)"
            ).kafkaMessage(topic: Topics.defaults.timeSeries)
        }
    }

    /// The events of the five twins in the hour from `base`, counted by `aggregateSeries` on the tsi-store at `port`.
    @Sendable static func levelEventCount(port: Int, base: Int64) async throws -> Int64 {
        var sum: Int64 = 0
        for twin in 0..<5 {
            let (_, body) = try await query(
                port: port,
                [
                    "aggregateSeries": [
                        "timeSeriesId": [.string("twin-\(twin)")],
                        "searchSpan": [
                            "from": .string(TimeSeriesTime.string(milliseconds: base)),
                            "to": .string(TimeSeriesTime.string(milliseconds: base + 3_600_000)),
                        ],
                        "interval": "PT1H", "inlineVariables": ["Count": ["kind": "aggregate", "aggregation": ["tsx": "count()"]]],
                    ]
                ])
            sum += values(body, "Count")?.first?.integerValue ?? 0
        }
        return sum
    }

    /// A tsi-store process on `devbroker` with `environment`, once it is ready; its HTTP port.
    static func startStore(_ devbroker: DevBrokerProcess, environment: [String: String]) async throws -> (ChildProcess, Int) {
        let port = unusedPort()
        let store = try serviceProcess("tsi-store", bootstrap: devbroker.bootstrap, port: port, environment: environment)
        try #require(await waitUntilReady(port: port, containing: "accepts writes"))
        return (store, port)
    }

    static func metric(_ name: String, port: Int) async throws -> Int {
        let metrics = try await httpRequest("http://127.0.0.1:\(port)/metrics").text
        return metrics.split(separator: "\n").first { $0.hasPrefix("\(name) ") }.flatMap { Int($0.split(separator: " ")[1]) } ?? 0
    }

    /// tsi-store killed (SIGKILL) in the middle of a stream of events and started again on its file:
    /// what it had committed stays, what comes again (redelivered past its last stored offset, or
    /// repeated by the producer) counts once.
    @Test func aKilledStoreCountsEveryEventOnceAfterItsRestart() async throws {
        let devbroker = try DevBrokerProcess(partitions: 4)
        defer { devbroker.terminate() }
        let directory = ScratchDirectory.make("tsi-store")
        let kafka = KafkaConfiguration(bootstrapServers: devbroker.bootstrap)
        let producer = try KafkaProducer(configuration: KafkaProducerConfiguration(kafka: kafka), logger: Logger(label: "test"))
        let base = (Int64(Date().timeIntervalSince1970 * 1000) - 3_600_000) / 3_600_000 * 3_600_000
        func start() async throws -> (ChildProcess, Int) {
            try await Self.startStore(devbroker, environment: ["TWINFLOW_DATA_DIR": directory.path])
        }
        @Sendable func total(port: Int) async throws -> Int64 { try await Self.levelEventCount(port: port, base: base) }
        @Sendable func events(_ range: Range<Int>) -> [KafkaProducerMessage] { Self.levelEvents(range, base: base) }

        let (first, firstPort) = try await start()
        // 20,000 events over two seconds; the store is killed once it has counted a quarter of them.
        let sent = SentChunks()
        let sender = Task {
            for chunk in 0..<20 {
                try await producer.send(events(chunk * 1000..<(chunk + 1) * 1000))
                sent.count.add(1, ordering: .relaxed)
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        #expect(await eventually { ((try? await total(port: firstPort)) ?? 0) >= 5_000 })
        let sentBeforeTheKill = sent.count.load(ordering: .relaxed)
        first.kill()
        #expect(!first.process.isRunning && first.process.terminationReason == .uncaughtSignal, "the store was killed")
        #expect(sentBeforeTheKill < 20, "killed while the events were still coming: \(sentBeforeTheKill) of 20 chunks sent")
        try await sender.value
        try await producer.send(events(0..<200))
        await producer.shutdown()
        let (second, secondPort) = try await start()
        defer { second.terminate() }
        #expect(await eventually { (try? await total(port: secondPort)) == 20_000 })
        try await Task.sleep(for: .seconds(1))
        #expect(try await total(port: secondPort) == 20_000, "every event once: none lost, no repeat counted")
        let duplicates = try await Self.metric("twinflow_tsi_store_duplicates_total", port: secondPort)
        #expect(duplicates >= 200, "the producer's 200 repeats were dropped as repeats: \(duplicates)")
    }

    /// Two tsi-store instances on one PostgreSQL database share `eventhub.tsi`'s partitions, and
    /// each answers for all the events; one killed (SIGKILL), the other takes its partitions over,
    /// and every event still counts once.
    @Test func twoStoresOnPostgreSQLShareThePartitionsAndEachAnswersForAll() async throws {
        let devbroker = try DevBrokerProcess(partitions: 4)
        defer { devbroker.terminate() }
        let database = try PostgresCluster.shared().makeDatabase("tsiprocess")
        let kafka = KafkaConfiguration(bootstrapServers: devbroker.bootstrap)
        let producer = try KafkaProducer(configuration: KafkaProducerConfiguration(kafka: kafka), logger: Logger(label: "test"))
        let base = (Int64(Date().timeIntervalSince1970 * 1000) - 3_600_000) / 3_600_000 * 3_600_000
        func start() async throws -> (ChildProcess, Int) {
            try await Self.startStore(
                devbroker,
                environment: [
                    "TWINFLOW_DATABASE_URL": database, "TWINFLOW_DATA_DIR": ScratchDirectory.make("tsi-store").path,
                    "KAFKA_CONFIG_SESSION_TIMEOUT_MS": "6000",
                ])
        }
        let (first, firstPort) = try await start()
        let (second, secondPort) = try await start()
        defer { second.terminate() }
        // Both in the group before the events come, so that each gets partitions.
        #expect(await eventually { (try? await httpRequest("http://127.0.0.1:\(firstPort)/readyz").status) == 200 })
        try await producer.send(Self.levelEvents(0..<500, base: base))
        #expect(await eventually { (try? await Self.levelEventCount(port: firstPort, base: base)) == 500 })
        #expect(try await Self.levelEventCount(port: secondPort, base: base) == 500, "either instance answers for all")
        let storedByEach = [
            try await Self.metric("twinflow_tsi_store_stored_total", port: firstPort),
            try await Self.metric("twinflow_tsi_store_stored_total", port: secondPort),
        ]
        #expect(storedByEach.allSatisfy { $0 > 0 } && storedByEach.reduce(0, +) == 500, "the partitions were shared: \(storedByEach)")
        first.kill()
        #expect(!first.process.isRunning && first.process.terminationReason == .uncaughtSignal, "the first instance was killed")
        try await producer.send(Self.levelEvents(500..<1000, base: base) + Self.levelEvents(0..<100, base: base))
        await producer.shutdown()
        #expect(await eventually(timeout: .seconds(60)) { (try? await Self.levelEventCount(port: secondPort, base: base)) == 1000 })
        try await Task.sleep(for: .seconds(1))
        #expect(try await Self.levelEventCount(port: secondPort, base: base) == 1000, "every event once after the takeover")
    }

    /// A database URL tsi-store cannot use stops it at startup with one line naming the variable,
    /// the password hidden.
    @Test func anUnusableDatabaseURLEndsTheStoreWithOneLine() async throws {
        var environment = ProcessInfo.processInfo.environment
        environment["KAFKA_BOOTSTRAP_SERVERS"] = "127.0.0.1:\(unusedPort())"
        environment["HTTP_PORT"] = "0"
        environment["LOG_LEVEL"] = "critical"
        environment["TWINFLOW_DATA_DIR"] = ScratchDirectory.make("tsi-store").path
        environment["TWINFLOW_DATABASE_URL"] = "postgres://twinflow:secret@db:5432"
        let store = try ChildProcess("tsi-store", environment: environment, capturingStandardError: true)
        #expect(await store.exitStatus(within: .seconds(20)) == 1)
        let lines = store.standardErrorText.split(separator: "\n")
        #expect(lines.count == 1, "\(store.standardErrorText)")
        #expect(
            lines.first?.contains(#"tsi-store: cannot start: TWINFLOW_DATABASE_URL="postgres://twinflow:***@db:5432" is not valid"#) == true,
            "\(store.standardErrorText)")
        #expect(!store.standardErrorText.contains("secret"))
    }
}

/// How many chunks of events a test's sender has sent so far.
private final class SentChunks: Sendable {
    let count = Atomic(0)
}
