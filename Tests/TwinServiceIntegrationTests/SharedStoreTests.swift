import Foundation
import Logging
import Testing
import TwinGraph
import TwinflowCodec
import TwinflowKafka
import TwinflowPostgres
import TwinflowTestSupport

/// Several twin-service instances over one PostgreSQL database, as separate processes on a devbroker.
@Suite(.serialized) struct SharedStoreTests {
    static let twins = 100
    static let commands = 50_000
    static let restTwins = 10
    static let kills = 4
    static let thermostat = "dtmi:contosocom:DigitalTwins:Thermostat;1"

    /// Two instances share the commands and the REST API; one of them is killed with SIGKILL again
    /// and again (the one that relays, every other time). At the end every command took effect once,
    /// every REST patch that was answered took effect, and every twin's notifications on the topic
    /// are gapless and in `sequence` order, whichever instance wrote and published them.
    @Test func twoInstancesKilledAgainAndAgainLoseNothingAndKeepEachTwinsOrder() async throws {
        let database = try PostgresCluster.shared().makeDatabase("twins")
        try await Self.createTwins(database)
        let devbroker = try DevBrokerProcess(partitions: 4)
        defer { devbroker.terminate() }
        let kafka = KafkaConfiguration(bootstrapServers: devbroker.bootstrap)
        var logger = Logger(label: "shared-store-test")
        logger.logLevel = .warning
        let reader = try TopicReader(kafka: kafka, topics: [Topics.defaults.twinEvents], logger: logger)
        let producer = try KafkaProducer(configuration: KafkaProducerConfiguration(kafka: kafka), logger: logger)
        let ports = [unusedPort(), unusedPort()]
        var instances = try ports.map { try twinServiceProcess(bootstrap: devbroker.bootstrap, port: $0, databaseURL: database) }

        let sending = Task {
            try await CrashTests.sendTemperatureCommands(Self.commands, twins: Self.twins, through: producer, pause: .milliseconds(60))
        }
        let patching = Task { () -> (answered: [Int], sent: [Int]) in
            var answered = Array(repeating: 0, count: Self.restTwins)
            var sent = Array(repeating: 0, count: Self.restTwins)
            var index = 0
            while !Task.isCancelled {
                let twin = index % Self.restTwins
                let body = Array(#"[{"op": "replace", "path": "/Temperature", "value": \#(index)}]"#.utf8)
                sent[twin] += 1
                let reply = try? await httpRequest(
                    "http://127.0.0.1:\(ports[index % 2])/digitaltwins/\(Self.restTwinID(twin))", method: "PATCH", body: body)
                if reply?.status == 204 { answered[twin] += 1 }
                index += 1
                try? await Task.sleep(for: .milliseconds(5))
            }
            return (answered, sent)
        }

        var killed = 0
        for round in 0..<Self.kills {
            let before = (try reader.messages()).count
            let flowing = try await eventually(timeout: .seconds(120)) { (try reader.messages()).count >= before + 2000 }
            #expect(flowing, "the instances make progress in round \(round)")
            try await Task.sleep(for: .milliseconds(Int.random(in: 0...400)))
            // Every other round the instance that relays, so the relay's turn moves too.
            let victim = round % 2 == 0 ? try await relayingInstance(ports) : 1 - (try await relayingInstance(ports))
            instances[victim].kill()
            #expect(await instances[victim].exitStatus(within: .seconds(10)) != 0, "instance \(victim) was killed")
            killed += 1
            try await Task.sleep(for: .milliseconds(500))
            instances[victim] = try twinServiceProcess(bootstrap: devbroker.bootstrap, port: ports[victim], databaseURL: database)
        }
        #expect(killed == Self.kills)
        try await sending.value
        patching.cancel()
        let (answered, sent) = await patching.value

        let expectedCommands = Self.twins + Self.commands
        let complete = try await eventually(timeout: .seconds(600)) {
            let updates = try reader.messages().compactMap { try? CloudEvent(decoding: $0) }.filter {
                $0.attributes.subject?.hasPrefix("thermo_") == true
            }
            return Set(updates.map(\.attributes.id)).count >= expectedCommands
        }
        #expect(complete, "every command's notification arrived")
        for instance in instances { #expect(instance.terminate() == 0, "an instance stops cleanly on SIGTERM") }
        await producer.shutdown()

        let store = try await PostgresTwinStore(url: DatabaseURL(database), connections: 2, logger: logger)
        defer { store.close() }
        var restChanges: [String: Int] = [:]
        for twin in 0..<Self.twins {
            #expect(try await store.twin(Self.twinID(twin))?.version == Int64(1 + Self.commands / Self.twins), "\(Self.twinID(twin))")
        }
        for twin in 0..<Self.restTwins {
            let version = Int(try await store.twin(Self.restTwinID(twin))?.version ?? 0)
            #expect(version - 1 >= answered[twin] && version - 1 <= sent[twin], "\(Self.restTwinID(twin)): \(version - 1) changes")
            restChanges[Self.restTwinID(twin)] = version - 1
        }
        let restEvents = restChanges.values.reduce(Self.restTwins, +)
        let restComplete = try await eventually(timeout: .seconds(60)) {
            let ids = Set(
                try reader.messages().compactMap { try? CloudEvent(decoding: $0) }.filter { $0.attributes.subject?.hasPrefix("rest_") == true }.map(
                    \.attributes.id))
            return ids.count >= restEvents
        }
        #expect(restComplete, "every REST patch's notification arrived")
        try await reader.stop()

        // Each twin's notifications, first sightings only (a repeat keeps its event id), in topic order.
        var seen = Set<String>()
        var sequencesByTwin: [String: [Int]] = [:]
        var idsByValue: [Int64: Set<String>] = [:]
        let events = try reader.messages().map { try CloudEvent(decoding: $0) }
        for event in events {
            if event.attributes.type == "Microsoft.DigitalTwins.Twin.Update", event.attributes.subject?.hasPrefix("thermo_") == true,
                let value = event.data?["patch"]?[0]?["value"]?.integerValue
            {
                idsByValue[value, default: []].insert(event.attributes.id)
            }
            guard seen.insert(event.attributes.id).inserted else { continue }
            sequencesByTwin[event.attributes.subject ?? "", default: []].append(Int(event.attributes.sequence ?? "") ?? -1)
        }
        #expect(idsByValue.count == Self.commands, "an update notification for every command")
        #expect(idsByValue.values.allSatisfy { $0.count == 1 }, "a notification sent twice keeps its event id")
        for twin in 0..<Self.twins {
            #expect(sequencesByTwin[Self.twinID(twin)] == Array(1...(1 + Self.commands / Self.twins)), "\(Self.twinID(twin))")
        }
        for (twin, changes) in restChanges {
            #expect(sequencesByTwin[twin] == Array(1...(1 + changes)), "\(twin)")
        }
        print(
            "shared store crash test: \(events.count) events, \(events.count - seen.count) sent again, REST patches \(answered.reduce(0, +)) answered of \(sent.reduce(0, +))"
        )
    }

    /// The instance that relays is killed; the other takes the turn and publishes a change made
    /// through it within five seconds.
    @Test func anotherInstanceTakesOverTheRelayWithinFiveSeconds() async throws {
        let pair = try await TwoInstances(thermostats: 1)
        defer { pair.stop() }
        let (reader, ports, instances): (TopicReader, [Int], [ChildProcess]) = (pair.reader, pair.ports, pair.instances)
        let relaying = try await relayingInstance(ports)
        let other = 1 - relaying
        #expect(await readiness(of: ports[other]).contains("another instance relays"), "one instance stands by")

        instances[relaying].kill()
        #expect(await instances[relaying].exitStatus(within: .seconds(10)) != 0, "the relaying instance was killed")
        let killedAt = ContinuousClock.now
        let body = Array(#"[{"op": "replace", "path": "/Temperature", "value": 4242}]"#.utf8)
        #expect(try await httpRequest("http://127.0.0.1:\(ports[other])/digitaltwins/\(Self.twinID(0))", method: "PATCH", body: body).status == 204)
        let published = try await eventually(timeout: .seconds(30)) {
            try reader.messages().contains { (try? CloudEvent(decoding: $0))?.data?["patch"]?[0]?["value"]?.integerValue == 4242 }
        }
        let took = ContinuousClock.now - killedAt
        #expect(published, "the change made after the kill was published")
        #expect(took < .seconds(5), "the other instance relayed within five seconds (took \(took))")
        #expect(await readiness(of: ports[other]).contains("\"relaying\""), "the other instance now relays")
        print("relay fail-over: the change made after the kill was published \(took) after it")
        try await reader.stop()
    }

    /// Whatever one instance wrote, the other reads as soon as the write returned: a model (and a
    /// twin of it made through the other), a twin, an event route, a query's answer.
    @Test func aWriteThroughOneInstanceIsSeenThroughTheOtherAtOnce() async throws {
        let pair = try await TwoInstances(thermostats: 0, reading: false)
        defer { pair.stop() }
        let ports = pair.ports
        let (first, second) = ("http://127.0.0.1:\(ports[0])", "http://127.0.0.1:\(ports[1])")

        let models = try Fixtures.upload("seed").jsonString()
        #expect(try await httpRequest("\(first)/models", method: "POST", body: Array(models.utf8)).status == 201)
        let twin = #"{"$metadata": {"$model": "dtmi:contosocom:DigitalTwins:Thermostat;1"}, "Temperature": 20}"#
        #expect(try await httpRequest("\(second)/digitaltwins/thermo_1", method: "PUT", body: Array(twin.utf8)).status == 200)
        #expect(try await httpRequest("\(first)/digitaltwins/thermo_1").status == 200)
        let listed = try JSONValue.parse(try await httpRequest("\(second)/models").body)
        #expect(listed["value"]?.arrayValue?.count == 2, "the models uploaded through the first are listed by the second")

        let route = #"{"endpointName": "twin-events", "filter": "type = 'Microsoft.DigitalTwins.Twin.Update'"}"#
        #expect(try await httpRequest("\(first)/eventroutes/updates-only", method: "PUT", body: Array(route.utf8)).status == 204)
        #expect(try await httpRequest("\(second)/eventroutes/updates-only").status == 200)
        #expect(try await httpRequest("\(second)/eventroutes/updates-only", method: "DELETE").status == 204)
        #expect(try await httpRequest("\(first)/eventroutes/updates-only").status == 404)

        let patch = #"[{"op": "replace", "path": "/Temperature", "value": 31}]"#
        #expect(try await httpRequest("\(first)/digitaltwins/thermo_1", method: "PATCH", body: Array(patch.utf8)).status == 204)
        let read = try JSONValue.parse(try await httpRequest("\(second)/digitaltwins/thermo_1").body)
        #expect(read["Temperature"]?.integerValue == 31)
        let query = #"{"query": "SELECT T FROM DIGITALTWINS T WHERE T.Temperature = 31"}"#
        let answer = try JSONValue.parse(try await httpRequest("\(second)/query", method: "POST", body: Array(query.utf8)).body)
        #expect(answer["value"]?.arrayValue?.count == 1)
    }

    /// Patches of one twin through both instances at the same moment all apply, one after the other:
    /// the twin's version counts every one and its notifications are numbered without a gap.
    @Test func patchesOfOneTwinThroughBothInstancesAllApply() async throws {
        let pair = try await TwoInstances(thermostats: 1)
        defer { pair.stop() }
        let (reader, ports): (TopicReader, [Int]) = (pair.reader, pair.ports)
        let perClient = 50
        let statuses = try await withThrowingTaskGroup(of: [Int].self) { group in
            for client in 0..<8 {
                group.addTask {
                    var statuses: [Int] = []
                    for index in 0..<perClient {
                        let body = Array(#"[{"op": "replace", "path": "/Temperature", "value": \#(client * 1000 + index)}]"#.utf8)
                        statuses.append(
                            try await httpRequest("http://127.0.0.1:\(ports[client % 2])/digitaltwins/\(Self.twinID(0))", method: "PATCH", body: body)
                                .status)
                    }
                    return statuses
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        #expect(statuses.count == 8 * perClient && statuses.allSatisfy { $0 == 204 })
        let twin = try JSONValue.parse(try await httpRequest("http://127.0.0.1:\(ports[0])/digitaltwins/\(Self.twinID(0))").body)
        #expect(twin["$etag"]?.stringValue == "W/\"\(1 + 8 * perClient)\"", "every patch applied once")
        let published = try await eventually(timeout: .seconds(30)) { try reader.messages().count >= 1 + 8 * perClient }
        #expect(published)
        let sequences = try reader.messages().compactMap { Int(try CloudEvent(decoding: $0).attributes.sequence ?? "") }
        #expect(sequences == Array(1...(1 + 8 * perClient)), "gapless and in order on the topic")
        try await reader.stop()
    }

    static func twinID(_ index: Int) -> String { CrashTests.twinID(index) }
    static func restTwinID(_ index: Int) -> String { "rest_\(index)" }

    static func createTwins(_ database: String, thermostats: Int = Self.twins, restTwins: Int = Self.restTwins) async throws {
        var logger = Logger(label: "shared-store-test")
        logger.logLevel = .warning
        let store = try await PostgresTwinStore(url: DatabaseURL(database), connections: 2, logger: logger)
        defer { store.close() }
        let graph = try await DigitalTwinGraph(store: store)
        _ = try await graph.addModels(Fixtures.upload("seed"))
        for id in (0..<thermostats).map(twinID) + (0..<restTwins).map(restTwinID) {
            try await graph.putTwin(id, body: ["$metadata": ["$model": .string(thermostat)], "Temperature": -1])
        }
    }

    /// Which of the instances on `ports` says it relays (asked until one does).
    func relayingInstance(_ ports: [Int]) async throws -> Int {
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            for (index, port) in ports.enumerated() where await readiness(of: port).contains("\"relaying\"") { return index }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw PostgresClusterError("no instance says it relays")
    }

    func readiness(of port: Int) async -> String {
        (try? await httpRequest("http://127.0.0.1:\(port)/readyz"))?.text ?? ""
    }
}

/// Two twin-service instances as processes on one new database (with `thermostats` thermostats and
/// the seed's models when there are any) and a devbroker, both ready, and a reader of the twin
/// events (which a test stops itself) when `reading`.
struct TwoInstances {
    let devbroker: DevBrokerProcess
    let reader: TopicReader!
    let ports = [unusedPort(), unusedPort()]
    let instances: [ChildProcess]

    init(thermostats: Int, reading: Bool = true) async throws {
        let database = try PostgresCluster.shared().makeDatabase("twins")
        if thermostats > 0 { try await SharedStoreTests.createTwins(database, thermostats: thermostats, restTwins: 0) }
        devbroker = try DevBrokerProcess(partitions: 4)
        var logger = Logger(label: "shared-store-test")
        logger.logLevel = .warning
        reader =
            reading
            ? try TopicReader(kafka: KafkaConfiguration(bootstrapServers: devbroker.bootstrap), topics: [Topics.defaults.twinEvents], logger: logger)
            : nil
        instances = try ports.map { [devbroker] in try twinServiceProcess(bootstrap: devbroker.bootstrap, port: $0, databaseURL: database) }
        for port in ports { #expect(await waitUntilReady(port: port)) }
    }

    func stop() {
        for instance in instances { _ = instance.terminate() }
        _ = devbroker.terminate()
    }
}

extension JSONValue {
    fileprivate subscript(index: Int) -> JSONValue? {
        guard let array = arrayValue, array.indices.contains(index) else { return nil }
        return array[index]
    }
}
