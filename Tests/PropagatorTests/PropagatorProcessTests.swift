import Foundation
import Logging
import Testing
import TwinflowCodec
import TwinflowKafka
import TwinflowTestSupport

/// devbroker, twin-service, propagator (and ingress) as separate processes: changes in, parents
/// patched by the rules, read back through twin-service's API.
@Suite(.serialized) struct PropagatorProcessTests {
    static let thermostat = "dtmi:contosocom:DigitalTwins:Thermostat;1"
    static let room = "dtmi:contosocom:DigitalTwins:Room;1"

    /// A devbroker and a twin-service with models uploaded; propagators started on demand.
    final class Stack {
        let devbroker: DevBrokerProcess
        let twinService: ChildProcess
        let twins: TwinServiceEndpoint
        let kafka: KafkaConfiguration
        var others: [ChildProcess] = []
        let scratch = ScratchDirectory.make("propagator-test")

        init(models: String) async throws {
            try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
            devbroker = try DevBrokerProcess(partitions: 4)
            let port = unusedPort()
            twinService = try twinServiceProcess(bootstrap: devbroker.bootstrap, port: port)
            twins = TwinServiceEndpoint(port: port)
            kafka = KafkaConfiguration(bootstrapServers: devbroker.bootstrap)
            try #require(await twins.waitUntilUp())
            try await twins.uploadModels(models)
        }

        /// A propagator by `rules` (the seed rule when nil), ready with its view loaded.
        @discardableResult
        func startPropagator(rules: String? = nil, environment: [String: String] = [:]) async throws -> (process: ChildProcess, port: Int) {
            var environment = environment
            environment["TWINS_URL"] = twins.url
            if let rules {
                let file = scratch.appending(path: "rules-\(UUID()).json")
                try Data(rules.utf8).write(to: file)
                environment["PROPAGATOR_RULES"] = file.path
            }
            let port = unusedPort()
            let process = try serviceProcess("propagator", bootstrap: devbroker.bootstrap, port: port, environment: environment)
            others.append(process)
            try #require(await waitUntilReady(port: port, containing: "relationships"), "the propagator is ready with its view loaded")
            return (process, port)
        }

        /// The seed scenario: Room_01… each with thermo_0001… by `rel_has_thermostat`, thermostats at 0.
        func seedRooms(_ count: Int) async throws {
            for index in 1...count {
                try await twins.putTwin(PropagatorProcessTests.thermostatID(index), model: PropagatorProcessTests.thermostat, ["Temperature": 0])
                try await twins.putTwin(PropagatorProcessTests.roomID(index), model: PropagatorProcessTests.room)
                try await twins.relate(
                    PropagatorProcessTests.roomID(index), "r\(index)", name: "rel_has_thermostat", target: PropagatorProcessTests.thermostatID(index))
            }
        }

        func metrics(port: Int) async throws -> [String: Int] { try await propagatorMetrics(port: port) }

        /// Waits until `twin`'s `property` is `value`.
        func waitFor(_ twin: String, _ property: String, _ value: JSONValue, timeout: Duration = .seconds(30)) async -> Bool {
            let twins = self.twins
            return await eventually(timeout: timeout) { (try? await twins.twin(twin))?[property] == value }
        }

        func stop() {
            for process in others { process.terminate() }
            twinService.terminate()
            devbroker.terminate()
        }
    }

    static func propagatorMetrics(port: Int) async throws -> [String: Int] {
        let text = try await httpRequest("http://127.0.0.1:\(port)/metrics").text
        var values: [String: Int] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: " ")
            if parts.count == 2, let value = Int(parts[1]) {
                values[String(parts[0]).replacingOccurrences(of: "twinflow_propagator_", with: "")] = value
            }
        }
        return values
    }

    /// Rooms with a thermostat each; device messages through ingress set the thermostats, and the
    /// seed rule sets each room's `currentTemp` to its thermostat's last reading.
    @Test func everyRoomEndsOnItsThermostatsLastTemperature() async throws {
        let stack = try await Stack(models: "seed")
        defer { stack.stop() }
        let rooms = 8
        try await stack.seedRooms(rooms)
        let (_, propagatorPort) = try await stack.startPropagator()
        let ingressPort = unusedPort()
        stack.others.append(
            try serviceProcess("ingress", bootstrap: stack.devbroker.bootstrap, port: ingressPort, environment: ["TWINS_URL": stack.twins.url]))
        try #require(await waitUntilReady(port: ingressPort))

        let producer = try KafkaProducer(configuration: KafkaProducerConfiguration(kafka: stack.kafka), logger: Logger(label: "test"))
        let readings = 20
        for reading in 0..<readings {
            try await producer.send(
                (1...rooms).map { index in
                    DeviceMessage(
                        deviceID: Self.thermostatID(index), enqueuedTime: Timestamp.now(), messageID: "m-\(index)-\(reading)",
                        body: ["Temperature": .double(Self.temperature(index, reading))]
                    ).kafkaMessage(topic: Topics.defaults.deviceMessages)
                })
        }
        await producer.shutdown()
        for index in 1...rooms {
            let last = JSONValue.double(Self.temperature(index, readings - 1))
            #expect(await stack.waitFor(Self.thermostatID(index), "Temperature", last), "\(Self.thermostatID(index)) took its last reading")
            #expect(await stack.waitFor(Self.roomID(index), "currentTemp", last), "\(Self.roomID(index)) ends on its thermostat's last reading")
        }
        let metrics = try await stack.metrics(port: propagatorPort)
        #expect((metrics["propagated_total"] ?? 0) >= rooms, "\(metrics)")
        #expect(metrics["dead_letters_total"] == 0, "\(metrics)")
    }

    /// ADT's own sample by a rules file alone: Thermostat → Room → Floor by `contains`, each
    /// parent's `Temperature` set to its child's.
    @Test func adtsSampleChainReachesTheFloor() async throws {
        let stack = try await Stack(models: "building")
        defer { stack.stop() }
        try await stack.twins.putTwin("floor1", model: "dtmi:example:building:Floor;1")
        try await stack.twins.putTwin("room1", model: "dtmi:example:building:Room;1")
        try await stack.twins.putTwin("thermostat1", model: "dtmi:example:building:Thermostat;1")
        try await stack.twins.relate("floor1", "f1-r1", name: "contains", target: "room1")
        try await stack.twins.relate("room1", "r1-t1", name: "contains", target: "thermostat1")
        try await stack.startPropagator(
            rules:
                #"{"rules": [{"sourceProperty": "/Temperature", "relationship": "contains", "direction": "incoming", "targetProperty": "/Temperature", "kind": "copy"}]}"#
        )
        try await stack.twins.set("thermostat1", ["Temperature": 19.5])
        #expect(await stack.waitFor("room1", "Temperature", 19.5))
        #expect(await stack.waitFor("floor1", "Temperature", 19.5), "two hops up")
        try await stack.twins.set("thermostat1", ["Temperature": 20.25])
        #expect(await stack.waitFor("floor1", "Temperature", 20.25))
    }

    /// A relationship moved at runtime: after a second, the thermostat's changes go to its new room.
    @Test func aRelationshipMovedAtRuntimeTakesEffect() async throws {
        let stack = try await Stack(models: "seed")
        defer { stack.stop() }
        try await stack.twins.putTwin("t1", model: Self.thermostat)
        try await stack.twins.putTwin("roomA", model: Self.room)
        try await stack.twins.putTwin("roomB", model: Self.room)
        try await stack.twins.relate("roomA", "a-t1", name: "rel_has_thermostat", target: "t1")
        try await stack.startPropagator()
        try await stack.twins.set("t1", ["Temperature": 18])
        #expect(await stack.waitFor("roomA", "currentTemp", 18))

        try await stack.twins.unrelate("roomA", "a-t1")
        try await stack.twins.relate("roomB", "b-t1", name: "rel_has_thermostat", target: "t1")
        try await Task.sleep(for: .seconds(1))
        try await stack.twins.set("t1", ["Temperature": 22])
        #expect(await stack.waitFor("roomB", "currentTemp", 22), "the new room takes the change")
        #expect(try await stack.twins.twin("roomA")["currentTemp"] == 18, "the old room no longer does")

        // A thermostat with no room yet gets one and changes at once: finding no parent, the
        // propagator first reads the rest of the topic, so the new relationship counts.
        try await stack.twins.putTwin("t2", model: Self.thermostat)
        try await stack.twins.relate("roomA", "a-t2", name: "rel_has_thermostat", target: "t2")
        try await stack.twins.set("t2", ["Temperature": 23])
        #expect(await stack.waitFor("roomA", "currentTemp", 23), "a relationship made just before the change counts (the view catches up)")
    }

    /// Two twins containing each other, with a rule that copies either way: a change goes round
    /// once and stops (the parent holds the value). With a hop limit of 2 along a longer chain, the
    /// third hop is dropped and counted.
    @Test func aCycleTerminatesAndTheHopLimitIsCounted() async throws {
        let stack = try await Stack(models: "building")
        defer { stack.stop() }
        for id in ["a", "b", "c", "d"] { try await stack.twins.putTwin(id, model: "dtmi:example:building:Room;1") }
        let node: JSONValue = [
            "@id": "dtmi:test:propagation:Node;1", "@type": "Interface", "@context": "dtmi:dtdl:context;3",
            "contents": [
                ["@type": "Property", "name": "Temperature", "schema": "double"], ["@type": "Relationship", "name": "feeds"],
            ],
        ]
        try await stack.twins.uploadModels([node])
        for id in ["n1", "n2", "c1", "c2", "c3", "c4"] { try await stack.twins.putTwin(id, model: "dtmi:test:propagation:Node;1") }
        try await stack.twins.relate("n1", "n1-n2", name: "feeds", target: "n2")
        try await stack.twins.relate("n2", "n2-n1", name: "feeds", target: "n1")
        // c1 → c2 → c3 → c4 by incoming `feeds`: c2 feeds c1, c3 feeds c2, c4 feeds c3.
        try await stack.twins.relate("c2", "c2-c1", name: "feeds", target: "c1")
        try await stack.twins.relate("c3", "c3-c2", name: "feeds", target: "c2")
        try await stack.twins.relate("c4", "c4-c3", name: "feeds", target: "c3")
        let (_, port) = try await stack.startPropagator(
            rules: #"{"rules": [{"sourceProperty": "/Temperature", "relationship": "feeds", "targetProperty": "/Temperature"}]}"#,
            environment: ["PROPAGATOR_HOP_LIMIT": "2"])
        let reader = try TopicReader(kafka: stack.kafka, topics: [Topics.defaults.twinEvents], logger: Logger(label: "test"))
        try await stack.twins.set("n1", ["Temperature": 7])
        #expect(await stack.waitFor("n2", "Temperature", 7))
        @Sendable func cycleUpdates() throws -> [TwinNotification] {
            try reader.messages().compactMap { try? TwinNotification(decoding: $0) }.filter {
                if case .twinUpdated = $0.change { return ["n1", "n2"].contains($0.twinID) }
                return false
            }
        }
        #expect(try await eventually { try cycleUpdates().count >= 2 })
        try await Task.sleep(for: .seconds(2))
        let updates = try cycleUpdates()
        #expect(updates.count == 2, "n1's change and n2's copy, then nothing: \(updates.map(\.twinID))")
        #expect(try await stack.twins.twin("n1")["Temperature"] == 7)

        try await stack.twins.set("c1", ["Temperature": 3])
        #expect(await stack.waitFor("c3", "Temperature", 3), "two hops")
        let limited = await eventually(timeout: .seconds(10)) { ((try? await Self.propagatorMetrics(port: port))?["hop_limited_total"] ?? 0) >= 1 }
        #expect(limited, "the third hop is dropped and counted")
        #expect(try await stack.twins.twin("c4")["Temperature"] == nil, "the hop limit stopped the chain")
        try await reader.stop()
    }

    /// `average` over a room's thermostats, with exact expected values; a thermostat taken from the
    /// room or given back changes it at once.
    @Test func averageOverSeveralThermostats() async throws {
        let stack = try await Stack(models: "seed")
        defer { stack.stop() }
        try await stack.twins.putTwin("room", model: Self.room)
        for (index, temperature) in [20.0, 21.0, 23.5].enumerated() {
            try await stack.twins.putTwin("t\(index)", model: Self.thermostat, ["Temperature": .double(temperature)])
            try await stack.twins.relate("room", "room-t\(index)", name: "rel_has_thermostat", target: "t\(index)")
        }
        try await stack.startPropagator(
            rules:
                #"{"rules": [{"sourceModel": "dtmi:contosocom:DigitalTwins:Thermostat;1", "sourceProperty": "/Temperature", "relationship": "rel_has_thermostat", "targetProperty": "/currentTemp", "kind": "average"}]}"#
        )
        try await stack.twins.set("t0", ["Temperature": 18.5])
        #expect(await stack.waitFor("room", "currentTemp", .double(21.0)), "(18.5 + 21 + 23.5) / 3, the other two from the view's load")
        try await stack.twins.set("t2", ["Temperature": 25])
        #expect(await stack.waitFor("room", "currentTemp", .double(21.5)), "(18.5 + 21 + 25) / 3")
        // Children that go and come change the average with no thermostat changing.
        try await stack.twins.unrelate("room", "room-t2")
        #expect(await stack.waitFor("room", "currentTemp", .double(19.75), timeout: .seconds(5)), "(18.5 + 21) / 2, once t2 is no longer the room's")
        try await stack.twins.relate("room", "room-t2-again", name: "rel_has_thermostat", target: "t2")
        #expect(await stack.waitFor("room", "currentTemp", .double(21.5), timeout: .seconds(5)), "t2 is the room's again")
    }

    /// Two propagators share the group's partitions, and every thermostat of every room changes at
    /// once, round after round: each instance works out a room's average while the other is handling
    /// another of its thermostats, before its view has read that change. Every room still ends on
    /// the exact average of its thermostats' last values.
    @Test func twoInstancesLeaveEveryAverageExact() async throws {
        let stack = try await Stack(models: "seed")
        defer { stack.stop() }
        let rooms = 24
        let thermostats = 4
        func thermostat(_ room: Int, _ index: Int) -> String { "t-\(room)-\(index)" }
        for room in 0..<rooms {
            try await stack.twins.putTwin("room-\(room)", model: Self.room)
            for index in 0..<thermostats {
                try await stack.twins.putTwin(thermostat(room, index), model: Self.thermostat, ["Temperature": 0])
                try await stack.twins.relate("room-\(room)", "r-\(room)-\(index)", name: "rel_has_thermostat", target: thermostat(room, index))
            }
        }
        let rules =
            #"{"rules": [{"sourceModel": "dtmi:contosocom:DigitalTwins:Thermostat;1", "sourceProperty": "/Temperature", "relationship": "rel_has_thermostat", "targetProperty": "/currentTemp", "kind": "average"}]}"#
        let first = try await stack.startPropagator(rules: rules)
        let second = try await stack.startPropagator(rules: rules)
        for port in [first.port, second.port] {
            try #require(await waitUntilReady(port: port, containing: "2 partition(s) assigned"), "both instances own two of the four partitions")
        }

        let producer = try KafkaProducer(configuration: KafkaProducerConfiguration(kafka: stack.kafka), logger: Logger(label: "test"))
        let temperature = try JSONPointer("/Temperature")
        let rounds = 6
        func value(_ round: Int, _ room: Int, _ index: Int) -> Double { Double(round * 1000 + room * 10 + index * (round % 3 + 1)) }
        for round in 1...rounds {
            var commands: [KafkaProducerMessage] = []
            for room in 0..<rooms {
                for index in 0..<thermostats {
                    commands.append(
                        TwinCommand(
                            id: "set-\(round)-\(room)-\(index)", twinID: thermostat(room, index),
                            patch: JSONPatch([.add(path: temperature, value: .double(value(round, room, index)))])
                        ).kafkaMessage(topic: Topics.defaults.twinCommands))
                }
            }
            try await producer.send(commands)
            try await Task.sleep(for: .milliseconds(20))
        }
        await producer.shutdown()

        let expected = (0..<rooms).map { room in (0..<thermostats).map { value(rounds, room, $0) }.reduce(0, +) / Double(thermostats) }
        let twins = stack.twins
        @Sendable func wrongRooms() async -> [String] {
            var wrong: [String] = []
            for room in 0..<rooms {
                let held = (try? await twins.twin("room-\(room)"))?["currentTemp"]
                if held != .double(expected[room]) { wrong.append("room-\(room): \(held.map { "\($0)" } ?? "none") for \(expected[room])") }
            }
            return wrong
        }
        let settled = await eventually(timeout: .seconds(20)) { await wrongRooms().isEmpty }
        let wrong = settled ? [] : await wrongRooms()
        #expect(settled, "rooms not on their thermostats' average: \(wrong)")
        let rechecked =
            try await stack.metrics(port: first.port)["rechecked_total", default: 0] + stack.metrics(port: second.port)["rechecked_total", default: 0]
        #expect(rechecked > 0, "the instances worked out aggregates again")
    }

    /// The partitions an instance is given (at its start, when another joins, when one is killed)
    /// have their aggregate parents reconciled without any child changing: an owner that stopped
    /// between sending a parent a value that missed a change and reading that change leaves it to
    /// them. A value set by hand stays while its partition keeps its owner.
    @Test func partitionsGivenToAnInstanceHaveTheirAggregateParentsReconciled() async throws {
        let stack = try await Stack(models: "seed")
        defer { stack.stop() }
        let rooms = 24
        func thermostat(_ room: Int, _ index: Int) -> String { "t-\(room)-\(index)" }
        func reading(_ room: Int, _ index: Int) -> Double { Double(room * 10 + index * 3) }
        for room in 0..<rooms {
            try await stack.twins.putTwin("room-\(room)", model: Self.room, ["currentTemp": -1])
            for index in 0..<2 {
                try await stack.twins.putTwin(thermostat(room, index), model: Self.thermostat, ["Temperature": .double(reading(room, index))])
                try await stack.twins.relate("room-\(room)", "r-\(room)-\(index)", name: "rel_has_thermostat", target: thermostat(room, index))
            }
        }
        let partitionOfRoom = (0..<rooms).map { KafkaPartitioner.partition(ofKey: "room-\($0)", partitionCount: 4) }
        try #require(Set(partitionOfRoom).count == 4, "rooms on every partition")
        let average = (0..<rooms).map { room in (reading(room, 0) + reading(room, 1)) / 2 }
        let twins = stack.twins
        /// The partitions whose rooms all hold the average, and those whose rooms all hold `handValue`.
        @Sendable func partitions(handValue: Double) async -> (exact: Set<Int32>, byHand: Set<Int32>) {
            var exact = Set(partitionOfRoom)
            var byHand = Set(partitionOfRoom)
            for room in 0..<rooms {
                let held = (try? await twins.twin("room-\(room)"))?["currentTemp"]
                if held != .double(average[room]) { exact.remove(partitionOfRoom[room]) }
                if held != .double(handValue) && held != .integer(Int64(handValue)) { byHand.remove(partitionOfRoom[room]) }
            }
            return (exact, byHand)
        }
        let rules =
            #"{"rules": [{"sourceModel": "dtmi:contosocom:DigitalTwins:Thermostat;1", "sourceProperty": "/Temperature", "relationship": "rel_has_thermostat", "targetProperty": "/currentTemp", "kind": "average"}]}"#

        let producer = try KafkaProducer(configuration: KafkaProducerConfiguration(kafka: stack.kafka), logger: Logger(label: "test"))
        let currentTemp = try JSONPointer("/currentTemp")
        /// Every room's `currentTemp` set to `value` by hand (hop 0), and read back.
        func setEveryRoomByHand(_ value: Double, round: Int) async throws {
            try await producer.send(
                (0..<rooms).map { room in
                    TwinCommand(
                        id: "by-hand-\(round)-\(room)", twinID: "room-\(room)", patch: JSONPatch([.add(path: currentTemp, value: .double(value))])
                    ).kafkaMessage(topic: Topics.defaults.twinCommands)
                })
            try #require(await eventually(timeout: .seconds(20)) { await partitions(handValue: value).byHand.count == 4 }, "every room set by hand")
        }

        let starting = try await stack.startPropagator(rules: rules)
        #expect(
            await eventually(timeout: .seconds(20)) { await partitions(handValue: -1).exact.count == 4 }, "the thermostats' values reach every room")
        starting.process.terminate()
        try await setEveryRoomByHand(-5, round: 1)

        // Started again, the instance reads the rooms' changes by hand from where it stopped and
        // would leave them; it is given every partition, and reconciles every room.
        let first = try await stack.startPropagator(rules: rules)
        #expect(await eventually(timeout: .seconds(20)) { await partitions(handValue: -5).exact.count == 4 }, "reconciled at its start")
        // Counted once the commands were delivered, a moment after twin-service may have applied them.
        let firstPort = first.port
        let firstRechecks = await eventually(timeout: .seconds(5)) {
            (try? await Self.propagatorMetrics(port: firstPort)["rechecked_total", default: 0]) == rooms
        }
        let firstRechecked = try await stack.metrics(port: first.port)["rechecked_total", default: 0]
        #expect(firstRechecks, "every room reconciled once at the start: \(firstRechecked)")

        try await setEveryRoomByHand(-7, round: 2)
        try await Task.sleep(for: .seconds(1))
        #expect(await partitions(handValue: -7).byHand.count == 4, "the owner leaves a value set by hand")

        let second = try await stack.startPropagator(rules: rules)
        for port in [first.port, second.port] {
            try #require(await waitUntilReady(port: port, containing: "2 partition(s) assigned"), "both instances own two of the four partitions")
        }
        let split = await eventually(timeout: .seconds(20)) {
            let state = await partitions(handValue: -7)
            return state.exact.count == 2 && state.byHand.count == 2
        }
        try await Task.sleep(for: .seconds(2))
        let afterJoin = await partitions(handValue: -7)
        #expect(
            split && afterJoin.exact.count == 2 && afterJoin.byHand.count == 2,
            "the joining instance reconciled the rooms of its two partitions, and only those: \(afterJoin)")
        let rechecksAfterJoin = try await stack.metrics(port: first.port)["rechecked_total", default: 0]
        #expect(rechecksAfterJoin == rooms, "the first kept its partitions: nothing new")

        first.process.kill()
        let reconciled = await eventually(timeout: .seconds(40)) { await partitions(handValue: -7).exact.count == 4 }
        let afterKill = await partitions(handValue: -7)
        #expect(reconciled, "the survivor reconciled the rooms of the killed instance's partitions: \(afterKill)")
        let survivorRechecks = try await stack.metrics(port: second.port)["rechecked_total", default: 0]
        #expect(survivorRechecks == rooms, "the survivor sent a value to every room once")
        await producer.shutdown()
    }

    /// A burst of a thermostat's notifications redelivered out of order (newer sequences than
    /// twin-service has used, written straight onto the topic): the room ends on the newest value,
    /// and the older ones are counted as stale.
    @Test func outOfOrderRedeliveriesLeaveEveryRoomOnTheNewestAndGarbageIsDeadLettered() async throws {
        let stack = try await Stack(models: "seed")
        defer { stack.stop() }
        let rooms = 4
        try await stack.seedRooms(rooms)
        let (_, port) = try await stack.startPropagator()
        var burst: [KafkaProducerMessage] = []
        for index in 1...rooms {
            // Sequences 1000…1009, sent as 1009, then 1000…1008 (each twice).
            let order = [9] + Array(0..<9) + Array(0..<9).reversed()
            for step in order {
                let sequence = Int64(1000 + step)
                let event = CloudEvent(
                    attributes: CloudEventAttributes(
                        id: "burst-\(index)-\(sequence)", type: "Microsoft.DigitalTwins.Twin.Update", source: "twinflow",
                        subject: Self.thermostatID(index), sequence: String(sequence)),
                    data: [
                        "modelId": .string(Self.thermostat),
                        "patch": [["op": "replace", "path": "/Temperature", "value": .double(Double(index * 100 + step))]],
                    ])
                burst.append(event.kafkaMessage(topic: Topics.defaults.twinEvents, key: Self.thermostatID(index)))
            }
        }
        // A message that is no notification at all, in the middle of the burst: dead-lettered, untouched, and the rest goes on.
        burst.insert(
            KafkaProducerMessage(topic: Topics.defaults.twinEvents, key: "thermo_0001", value: Array("not an event".utf8)), at: burst.count / 2)
        // Telemetry a route sends to the same topic: passed over, neither propagated nor dead-lettered.
        let telemetry = CloudEvent(
            attributes: CloudEventAttributes(
                id: "telemetry-1", type: "microsoft.iot.telemetry", source: "twinflow.local/digitaltwins/thermo_0001"),
            data: ["Temperature": -40])
        burst.insert(telemetry.kafkaMessage(topic: Topics.defaults.twinEvents, key: "thermo_0001"), at: burst.count / 3)
        let deadLetters = try TopicReader(kafka: stack.kafka, topics: [Topics.defaults.deadLetter], logger: Logger(label: "test"))
        let producer = try KafkaProducer(configuration: KafkaProducerConfiguration(kafka: stack.kafka), logger: Logger(label: "test"))
        try await producer.send(burst)
        await producer.shutdown()
        let dead = try await deadLetters.waitFor(1, on: Topics.defaults.deadLetter)
        #expect(dead.first?.value == Array("not an event".utf8), "the value untouched")
        let letter = try DeadLetter(decoding: try #require(dead.first))
        #expect(letter.service == "propagator" && letter.sourceTopic == Topics.defaults.twinEvents, "\(letter)")
        #expect(letter.reason.hasPrefix("not a twin notification"), "\(letter.reason)")
        for index in 1...rooms {
            #expect(await stack.waitFor(Self.roomID(index), "currentTemp", .double(Double(index * 100 + 9))), "\(Self.roomID(index)) on the newest")
        }
        let stale = await eventually(timeout: .seconds(10)) { ((try? await Self.propagatorMetrics(port: port))?["stale_total"] ?? 0) >= rooms * 18 }
        #expect(stale, "every older redelivery counted as stale")
        #expect(try await Self.propagatorMetrics(port: port)["ignored_total"] == 1, "the telemetry was passed over")
        #expect(try deadLetters.messages(on: Topics.defaults.deadLetter).count == 1, "only the message that is no event was dead-lettered")
        try await deadLetters.stop()
        try await Task.sleep(for: .milliseconds(500))
        for index in 1...rooms {
            #expect(try await stack.twins.twin(Self.roomID(index))["currentTemp"] == .double(Double(index * 100 + 9)), "and it stays there")
        }
    }

    /// A rules file that does not fit the models stops the propagator at start with one line naming the rule.
    @Test func aRuleThatDoesNotFitTheModelsStopsTheServiceWithOneLine() async throws {
        let stack = try await Stack(models: "seed")
        defer { stack.stop() }
        let file = stack.scratch.appending(path: "bad-rules.json")
        try Data(
            #"{"rules": [{"sourceModel": "dtmi:contosocom:DigitalTwins:Thermostat;1", "sourceProperty": "/Temperature", "relationship": "rel_has_thermostat", "targetProperty": "/currentTemperature"}]}"#
                .utf8
        ).write(to: file)
        let process = try serviceProcess(
            "propagator", bootstrap: stack.devbroker.bootstrap, port: unusedPort(),
            environment: ["TWINS_URL": stack.twins.url, "PROPAGATOR_RULES": file.path], capturingStandardError: true)
        #expect(await process.exitStatus(within: .seconds(30)) == 1)
        let lines = process.standardErrorText.split(separator: "\n").filter { $0.contains("critical") }
        #expect(lines.count == 1 && lines[0].contains("Room;1 has no property /currentTemperature"), "\(process.standardErrorText)")
    }

    static func thermostatID(_ index: Int) -> String { String(format: "thermo_%04d", index) }
    static func roomID(_ index: Int) -> String { String(format: "Room_%02d", index) }
    static func temperature(_ room: Int, _ reading: Int) -> Double { Double(room * 10) + Double(reading) / 4 }
}
