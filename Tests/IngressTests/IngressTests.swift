import Foundation
import Ingress
import Testing
import TwinGraph
import TwinflowCodec
import TwinflowKafka
import TwinflowRuntime
import TwinflowTestSupport

/// ingress on librdkafka's mock cluster with twin-service's REST API in the process: IoT Hub's
/// messages in, twin commands and dead letters out.
@Suite(.serialized) struct IngressTests {
    static let trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    @Test func iotHubMessagesBecomeTwinCommands() async throws {
        let api = try await TwinServiceAPI(logger: MockKafka().logger)
        let setup = try IngressSetup(twinsURL: api.url)
        try await api.loadModels()
        try await api.putThermostat("thermo_0001", temperature: 20)
        try await api.putThermostat("thermo_0002")

        let producer = try setup.kafka.makeProducer()
        try await producer.send([
            setup.deviceMessage(
                try Fixtures.file("iothub/device-telemetry-eventgrid.json"), key: "thermo_0001",
                headers: [KafkaHeader(key: "traceparent", string: Self.trace)]),
            setup.deviceMessage(try Fixtures.file("iothub/device-telemetry-data.json"), key: "thermo_0002"),
            setup.deviceMessage(try Fixtures.file("iothub/device-telemetry-base64-body.json"), key: "thermo_0002"),
            setup.deviceMessage(Array(#"{"body":{"Temperature":19.5}}"#.utf8), key: "thermo_0001"),
        ])
        let reader = try setup.reader([setup.topics.twinCommands, setup.topics.deadLetter])
        try await withIngress(setup, alongside: [api.application]) { ingress in
            let messages = try await reader.waitFor(4, on: setup.topics.twinCommands)
            #expect(messages.count == 4)
            let commands = try messages.map { try $0.command }
            #expect(zip(messages, commands).allSatisfy { $0.0.keyString == $0.1.twinID }, "commands are keyed by twin ID")
            let first = try #require(commands.first { $0.twinID == "thermo_0001" && $0.sourceTime != nil })
            #expect(first.patch?.json == [["op": "replace", "path": "/Temperature", "value": 21.5]], "the twin held a Temperature")
            #expect(first.telemetry == ["Temperature": 21.5])
            #expect(first.sourceTime == "2026-11-26T17:00:00.48Z")
            #expect(first.traceparent == Self.trace, "the incoming trace is carried")
            #expect(first.hop == 0)
            let keyed = try #require(commands.first { $0.twinID == "thermo_0001" && $0.sourceTime == nil })
            #expect(keyed.patch?.json == [["op": "replace", "path": "/Temperature", "value": 19.5]], "the Kafka key names the device")
            #expect(keyed.traceparent.map(Traceparent.isValid) == true, "a new trace when none came")
            #expect(keyed.traceparent != Self.trace)

            let second = commands.filter { $0.twinID == "thermo_0002" }
            #expect(second.count == 2)
            #expect(
                second.first?.id == "device/thermo_0002/message/thermo_0002-msg-1/2026-11-26T17:00:01.112Z",
                "IoT Hub's message ID and enqueued time make the command ID")
            #expect(second.first?.patch?.json == [["op": "add", "path": "/Temperature", "value": 22.25]], "the first reading lands as add")
            #expect(second.last?.patch?.json == [["op": "replace", "path": "/Temperature", "value": 23]], "the base64 body, then replace")
            #expect(second.last?.telemetry == ["Temperature": 23])
            let withoutMessageID = commands.filter { !$0.id.hasPrefix("device/") }
            #expect(withoutMessageID.count == 3)
            #expect(
                withoutMessageID.allSatisfy {
                    $0.id.wholeMatch(of: /[^\/]+\/[0-9]+\/[0-9]+@[0-9]+/) != nil && $0.id.hasPrefix("\(setup.topics.deviceMessages)/")
                },
                "topic/partition/offset@timestamp otherwise: \(withoutMessageID.map(\.id))")
            #expect(Set(commands.map(\.id)).count == 4)
            #expect(try reader.messages(on: setup.topics.deadLetter).isEmpty)
            #expect(ingress.check("twin-service")?.ready == true)
            #expect(ingress.check("mapping")?.detail.contains("ADT's sample") == true)
        }
        try await reader.stop()
        await producer.shutdown()
    }

    @Test func badInputIsDeadLetteredUntouchedAndCounted() async throws {
        let api = try await TwinServiceAPI(logger: MockKafka().logger)
        let setup = try IngressSetup(twinsURL: api.url, partitions: 1)
        try await api.loadModels()
        try await api.putThermostat("thermo_0001", temperature: 20)

        let producer = try setup.kafka.makeProducer()
        let bad: [(value: [UInt8], key: String?, reason: String)] = [
            (Array("not json".utf8), "thermo_0001", "not JSON"),
            (Array(#"{"body":{"Temperature":1}}"#.utf8), nil, "no device ID"),
            (Array(#"{"systemProperties":{"iothub-connection-device-id":"ghost"},"body":{"Temperature":1}}"#.utf8), "ghost", "unknown device"),
            (try Fixtures.file("iothub/device-telemetry-string-value.json"), "thermo_0001", "value does not fit"),
            (try Fixtures.file("iothub/device-telemetry-nan.json"), "thermo_0001", "value does not fit"),
        ]
        try await producer.send(bad.map { setup.deviceMessage($0.value, key: $0.key) })
        try await producer.send([setup.deviceMessage(Array(#"{"body":{"Temperature":30}}"#.utf8), key: "thermo_0001")])
        let reader = try setup.reader([setup.topics.twinCommands, setup.topics.deadLetter])
        try await withIngress(setup, alongside: [api.application]) { ingress in
            let letters = try await reader.waitFor(bad.count, on: setup.topics.deadLetter)
            let commands = try await reader.waitFor(1, on: setup.topics.twinCommands)
            #expect(letters.count == bad.count)
            #expect(
                try commands.map { try $0.command.patch?.json } == [[["op": "replace", "path": "/Temperature", "value": 30]]], "the batch goes on")
            for (letter, sent) in zip(letters, bad) {
                let deadLetter = try DeadLetter(decoding: letter)
                #expect(deadLetter.reason.hasPrefix(sent.reason + ":"), "\(deadLetter.reason)")
                #expect(deadLetter.service == "ingress")
                #expect(deadLetter.sourceTopic == setup.topics.deviceMessages)
                #expect(letter.value == sent.value, "the message goes on untouched")
                #expect(letter.keyString == sent.key)
            }
            let reasons = try letters.map { try DeadLetter(decoding: $0).reason }
            #expect(reasons[2].contains("ghost"))
            #expect(reasons[3].contains("/Temperature") && reasons[3].contains("must be a number"), "the field is named: \(reasons[3])")
            #expect(reasons[4].contains("/Temperature") && reasons[4].contains("not a finite number"), "\(reasons[4])")
            let metrics = try await ingress.get("/metrics")
            #expect(metrics.contains("twinflow_ingress_commands_total 1"))
            #expect(metrics.contains(#"twinflow_ingress_dead_letters_total{reason="value does not fit"} 2"#), "\(metrics)")
            #expect(metrics.contains(#"twinflow_ingress_dead_letters_total{reason="unknown device"} 1"#))
            #expect(metrics.contains(#"twinflow_ingress_dead_letters_total{reason="not JSON"} 1"#))
            #expect(metrics.contains(#"twinflow_ingress_dead_letters_total{reason="no device ID"} 1"#))
        }
        try await reader.stop()
        await producer.shutdown()
    }

    /// A message too large to be dead-lettered whole (the broker took it; with the dead letter's
    /// headers it would be over the producer's default message size) is dead-lettered without its
    /// value, its size noted, and ingress goes on; before, the refused dead letter held the batch.
    @Test func aMessageTooLargeToDeadLetterWholeGoesWithoutItsValue() async throws {
        let api = try await TwinServiceAPI(logger: MockKafka().logger)
        let setup = try IngressSetup(twinsURL: api.url, partitions: 1)
        try await api.loadModels()
        try await api.putThermostat("thermo_0001", temperature: 20)

        let producer = try setup.largeMessageProducer()
        let large = Array(repeating: UInt8(ascii: "x"), count: 999_900)
        try await producer.send([
            setup.deviceMessage(large, key: "thermo_0001"), setup.deviceMessage(Array(#"{"body":{"Temperature":30}}"#.utf8), key: "thermo_0001"),
        ])
        let reader = try setup.reader([setup.topics.twinCommands, setup.topics.deadLetter])
        try await withIngress(setup, alongside: [api.application]) { _ in
            let letters = try await reader.waitFor(1, on: setup.topics.deadLetter)
            let commands = try await reader.waitFor(1, on: setup.topics.twinCommands)
            #expect(commands.count == 1, "ingress went on")
            let letter = try #require(letters.first)
            #expect(try DeadLetter(decoding: letter).reason.hasPrefix("not JSON:"))
            #expect(letter.value == nil)
            #expect(letter.headers.string(for: DeadLetter.valueOmittedHeader) == "999900 bytes")
        }
        try await reader.stop()
        await producer.shutdown()
    }

    /// A reason quotes what it refused, cut to a kilobyte: a message from an unknown device whose ID
    /// (its key) is half a megabyte is dead-lettered, and ingress goes on. Before, the reason
    /// repeated the whole ID, and a dead letter of key and reason was too large to send even
    /// without its value: the batch was tried again for ever.
    @Test func aMessageFromAnUnknownDeviceWithAHugeIDIsDeadLettered() async throws {
        let api = try await TwinServiceAPI(logger: MockKafka().logger)
        let setup = try IngressSetup(twinsURL: api.url, partitions: 1)
        try await api.loadModels()
        try await api.putThermostat("thermo_0001", temperature: 20)

        let producer = try setup.largeMessageProducer()
        let hugeID = String(repeating: "d", count: 500_000)
        try await producer.send([
            setup.deviceMessage(Array(#"{"body":{"Temperature":30}}"#.utf8), key: hugeID),
            setup.deviceMessage(Array(#"{"body":{"Temperature":31}}"#.utf8), key: "thermo_0001"),
        ])
        let reader = try setup.reader([setup.topics.twinCommands, setup.topics.deadLetter])
        try await withIngress(setup, alongside: [api.application]) { _ in
            let letters = try await reader.waitFor(1, on: setup.topics.deadLetter)
            let commands = try await reader.waitFor(1, on: setup.topics.twinCommands)
            #expect(commands.map(\.keyString) == ["thermo_0001"], "ingress went on")
            let letter = try #require(letters.first)
            let reason = try DeadLetter(decoding: letter).reason
            #expect(reason.hasPrefix("unknown device: no twin for device 'ddd"), "\(reason.prefix(80))")
            #expect(reason.utf8.count <= DeadLetter.maximumReasonBytes)
            #expect(letter.keyString == hugeID, "the original's key, untouched")
        }
        try await reader.stop()
        await producer.shutdown()
    }

    /// A device message whose command grows past the producer's message size (its telemetry is
    /// most of a megabyte) is dead-lettered in its place, and the message after it still gets its command.
    @Test func aMessageWhoseCommandTheBrokerRefusesIsDeadLetteredInItsPlace() async throws {
        let api = try await TwinServiceAPI(logger: MockKafka().logger)
        let setup = try IngressSetup(twinsURL: api.url, partitions: 1)
        try await api.loadModels()
        try await api.putThermostat("thermo_0001", temperature: 20)

        let producer = try setup.largeMessageProducer()
        let large = #"{"body":{"Temperature":25,"note":""# + String(repeating: "x", count: 1_000_000) + #""}}"#
        try await producer.send([
            setup.deviceMessage(Array(large.utf8), key: "thermo_0001"),
            setup.deviceMessage(Array(#"{"body":{"Temperature":30}}"#.utf8), key: "thermo_0001"),
        ])
        let reader = try setup.reader([setup.topics.twinCommands, setup.topics.deadLetter])
        try await withIngress(setup, alongside: [api.application]) { _ in
            let letters = try await reader.waitFor(1, on: setup.topics.deadLetter)
            let commands = try await reader.waitFor(1, on: setup.topics.twinCommands)
            // The batch went whole once (delivering the good command), then a message at a time.
            let patches = try commands.map { try $0.command.patch?.json }
            #expect(!patches.isEmpty && patches.allSatisfy { $0 == [["op": "replace", "path": "/Temperature", "value": 30]] }, "ingress went on")
            let letter = try DeadLetter(decoding: try #require(letters.first))
            #expect(letter.reason.hasPrefix("the broker refused its output to \(setup.topics.twinCommands)"), "\(letter.reason)")
            #expect(letter.sourceOffset == 0)
            #expect(letters.first?.headers.string(for: DeadLetter.valueOmittedHeader) != nil, "over the dead letter's limit, its value is left out")
        }
        try await reader.stop()
        await producer.shutdown()
    }

    /// A mapping file maps devices to twins and body fields to properties; an edit takes effect
    /// while ingress runs, and a broken edit keeps the mapping before it.
    @Test func mappingFileIsReloadedWhileRunning() async throws {
        let api = try await TwinServiceAPI(logger: MockKafka().logger)
        let file = ScratchDirectory.make("ingress-mapping")
        try FileManager.default.createDirectory(at: file, withIntermediateDirectories: true)
        let path = file.appending(path: "mapping.json")
        try Data(
            #"{"devices":{"hw-1":"thermo_0001"},"properties":[{"from":"/sensor/temp","to":"/Temperature"}],"telemetry":false}"#.utf8
        ).write(to: path)
        let setup = try IngressSetup(
            twinsURL: api.url, extraVariables: ["INGRESS_MAPPING": path.path, "INGRESS_MAPPING_CHECK_SECONDS": "1"], partitions: 1)
        try await api.loadModels()
        try await api.putThermostat("thermo_0001", temperature: 20)
        try await api.putThermostat("thermo_0002", temperature: 20)
        let producer = try setup.kafka.makeProducer()
        func send(_ device: String, _ value: Double) async throws {
            try await producer.send([setup.deviceMessage(Array(#"{"body":{"sensor":{"temp":\#(value)}}}"#.utf8), key: device)])
        }
        let reader = try setup.reader([setup.topics.twinCommands, setup.topics.deadLetter])
        try await withIngress(setup, alongside: [api.application]) { ingress in
            try await send("hw-1", 18.5)
            try await send("hw-2", 19.5)
            let first = try await reader.waitFor(1, on: setup.topics.twinCommands)
            let command = try #require(first.first).command
            #expect(command.twinID == "thermo_0001")
            #expect(command.patch?.json == [["op": "replace", "path": "/Temperature", "value": 18.5]])
            #expect(command.telemetry == nil, "the mapping publishes no telemetry")
            let letters = try await reader.waitFor(1, on: setup.topics.deadLetter)
            #expect(
                try letters.map { try DeadLetter(decoding: $0).reason } == ["unknown device: no twin for device 'hw-2'"],
                "a listed mapping knows only its devices")

            let versionOne = Data(
                #"{"devices":{"hw-1":"thermo_0001","hw-2":"thermo_0002"},"properties":[{"from":"/sensor/temp","to":"/Temperature"}]}"#.utf8)
            try versionOne.write(to: path)
            #expect(await eventually(timeout: .seconds(10)) { ingress.check("mapping")?.detail.contains("version 1") == true })
            try Data("{ half-saved".utf8).write(to: path)
            #expect(await eventually(timeout: .seconds(10)) { ingress.check("mapping")?.detail.contains("not used") == true })
            #expect(ingress.check("mapping")?.ready == false, "the file's content is not in force: \(ingress.check("mapping")?.detail ?? "")")
            try await send("hw-2", 21)
            let commands = try await reader.waitFor(2, on: setup.topics.twinCommands)
            let reloaded = try #require(commands.last).command
            #expect(reloaded.twinID == "thermo_0002", "a broken edit keeps the mapping before it")
            #expect(reloaded.patch?.json == [["op": "replace", "path": "/Temperature", "value": 21]])
            #expect(reloaded.telemetry == ["sensor": ["temp": 21]], "the reloaded mapping publishes telemetry")
            try versionOne.write(to: path)
            #expect(await eventually(timeout: .seconds(10)) { ingress.check("mapping")?.ready == true }, "the edit undone, the file is in force")
            #expect(ingress.check("mapping")?.detail.hasSuffix("version 1") == true)
            try Data(#"{"devices":{"hw-1":"thermo_0001"}}"#.utf8).write(to: path)
            #expect(await eventually(timeout: .seconds(10)) { ingress.check("mapping")?.detail.hasSuffix("version 2") == true })
            #expect(ingress.check("mapping")?.ready == true)
        }
        try await reader.stop()
        await producer.shutdown()
    }

    /// Twins that name their device in a property are found through twin-service's query API; a
    /// device with no such twin is asked about again after the re-check interval, and found once a
    /// twin names it.
    @Test func twinsAreFoundByTheirDeviceIDProperty() async throws {
        let api = try await TwinServiceAPI(logger: MockKafka().logger)
        let file = ScratchDirectory.make("ingress-mapping")
        try FileManager.default.createDirectory(at: file, withIntermediateDirectories: true)
        let path = file.appending(path: "mapping.json")
        try Data(#"{"deviceIdProperty":"deviceId","properties":[{"from":"/Temperature","to":"/Temperature"},{"from":"/mode","to":"/Mode"}]}"#.utf8)
            .write(to: path)
        let setup = try IngressSetup(
            twinsURL: api.url, extraVariables: ["INGRESS_MAPPING": path.path, "INGRESS_MISS_RECHECK_SECONDS": "1"], partitions: 1)
        try await api.loadModels()
        let sensor = "dtmi:twinflow:test:Sensor;1"
        _ = try await api.graph.putTwin("sensor_a", body: ["$metadata": ["$model": .string(sensor)], "deviceId": "dev-a"])
        _ = try await api.graph.putTwin("sensor_b", body: ["$metadata": ["$model": .string(sensor)]])
        let quoting = #"dev-'c'\d"#
        _ = try await api.graph.putTwin("sensor_c", body: ["$metadata": ["$model": .string(sensor)], "deviceId": .string(quoting)])
        let producer = try setup.kafka.makeProducer()
        func send(_ device: String, _ body: String) async throws {
            try await producer.send([setup.deviceMessage(Array(#"{"body":\#(body)}"#.utf8), key: device)])
        }
        let reader = try setup.reader([setup.topics.twinCommands, setup.topics.deadLetter])
        try await withIngress(setup, alongside: [api.application]) { ingress in
            try await send("dev-a", #"{"Temperature":17,"mode":"eco"}"#)
            try await send("dev-a", #"{"Temperature":17,"mode":3}"#)
            try await send("dev-b", #"{"Temperature":18}"#)
            let commands = try await reader.waitFor(1, on: setup.topics.twinCommands)
            let command = try #require(commands.first).command
            #expect(command.twinID == "sensor_a")
            #expect(command.patch?.json == [["op": "add", "path": "/Temperature", "value": 17], ["op": "add", "path": "/Mode", "value": "eco"]])
            let letters = try await reader.waitFor(2, on: setup.topics.deadLetter)
            let reasons = try letters.map { try DeadLetter(decoding: $0).reason }
            #expect(reasons.first?.hasPrefix("value does not fit: /mode → /Mode: must be a string") == true, "\(reasons)")
            #expect(reasons.last == "unknown device: no twin for device 'dev-b'")

            _ = try await api.graph.patchTwin("sensor_b", patch: [["op": "add", "path": "/deviceId", "value": "dev-b"]])
            let commandsTopic = setup.topics.twinCommands
            let again = setup.deviceMessage(Array(#"{"body":{"Temperature":19}}"#.utf8), key: "dev-b")
            let found = try await eventually(timeout: .seconds(20)) {
                try await producer.send([again])
                try await Task.sleep(for: .milliseconds(200))
                return try reader.messages(on: commandsTopic).contains { try $0.command.twinID == "sensor_b" }
            }
            #expect(found, "a device is looked up again after the re-check interval")
            let forB = try reader.messages(on: setup.topics.twinCommands).map { try $0.command }.filter { $0.twinID == "sensor_b" }
            #expect(forB.first?.patch?.json == [["op": "add", "path": "/Temperature", "value": 19]])

            // A device ID with quotes and a backslash goes into the query escaped.
            try await send(quoting, #"{"Temperature":20}"#)
            #expect(
                try await eventually(timeout: .seconds(10)) {
                    try reader.messages(on: commandsTopic).contains { try $0.command.twinID == "sensor_c" }
                }, "found by its device-ID property")
            #expect(ingress.check("twin-service")?.ready == true)
        }
        try await reader.stop()
        await producer.shutdown()
    }

    /// Devices are looked up in queries that twin-service takes: a hundred IDs of 120 characters
    /// would make a query longer than its 8,000 characters (refused, and the batch held for ever),
    /// so a query carries as many as fit; an ID a query cannot quote is read by itself.
    @Test func longDeviceIDsAreLookedUpInQueriesTwinServiceTakes() async throws {
        let api = try await TwinServiceAPI(logger: MockKafka().logger)
        try await api.loadModels()
        // A quote, and a combining accent that would join the opening quote into one character.
        let devices =
            (0..<150).map { "thermo_" + String(repeating: "x", count: 110) + String(format: "%03d", $0) } + ["thermo_o'brien", "\u{301}thermo"]
        #expect(devices.allSatisfy { $0.count <= DigitalTwinGraph.maximumIDLength })
        for device in devices { try await api.putThermostat(device, temperature: 20) }
        let setup = try IngressSetup(twinsURL: api.url, partitions: 1)
        let producer = try setup.kafka.makeProducer()
        try await producer.send(devices.map { setup.deviceMessage(Array(#"{"body":{"Temperature":21}}"#.utf8), key: $0) })
        let reader = try setup.reader([setup.topics.twinCommands, setup.topics.deadLetter])
        try await withIngress(setup, alongside: [api.application]) { _ in
            let commands = try await reader.waitFor(devices.count, on: setup.topics.twinCommands, timeout: .seconds(20))
            #expect(Set(try commands.map { try $0.command.twinID }) == Set(devices))
            #expect(try commands.allSatisfy { try $0.command.patch?.json == [["op": "replace", "path": "/Temperature", "value": 21]] })
            #expect(try reader.messages(on: setup.topics.deadLetter).isEmpty)
        }
        try await reader.stop()
        await producer.shutdown()
    }

    /// An answer that will not change is not waited on: a lookup refused for its size is asked
    /// again one device at a time; a device whose lookup and read are both refused has no twin
    /// (dead-lettered, the others go on); a model that cannot be read leaves its twins' values to
    /// twin-service.
    @Test func lookupsTwinServiceRefusesAreAskedAgainInParts() async throws {
        let sensor = "dtmi:twinflow:test:Sensor;1"
        let gateway = RefusingGateway(maximumQueryBytes: 2_000, blocked: ["thermo_blocked", sensor])
        let api = try await TwinServiceAPI(logger: MockKafka().logger, gateway: gateway)
        try await api.loadModels()
        let thermostats = (0..<40).map { "thermo_" + String(repeating: "x", count: 80) + String(format: "%03d", $0) }
        for id in thermostats + ["thermo_blocked"] { try await api.putThermostat(id, temperature: 20) }
        _ = try await api.graph.putTwin("sensor_0001", body: ["$metadata": ["$model": .string(sensor)], "Temperature": 20])
        let setup = try IngressSetup(twinsURL: api.url, partitions: 1)
        let producer = try setup.kafka.makeProducer()
        try await producer.send(
            (thermostats + ["thermo_blocked"]).map { setup.deviceMessage(Array(#"{"body":{"Temperature":21}}"#.utf8), key: $0) }
                + [setup.deviceMessage(Array(#"{"body":{"Temperature":"warm"}}"#.utf8), key: "sensor_0001")])
        let reader = try setup.reader([setup.topics.twinCommands, setup.topics.deadLetter])
        try await withIngress(setup, alongside: [api.application]) { ingress in
            let commands = try await reader.waitFor(thermostats.count + 1, on: setup.topics.twinCommands, timeout: .seconds(20))
            let byTwin = Dictionary(try commands.map { (try $0.command.twinID, try $0.command) }) { first, _ in first }
            #expect(Set(byTwin.keys) == Set(thermostats + ["sensor_0001"]))
            #expect(thermostats.allSatisfy { byTwin[$0]?.patch?.json == [["op": "replace", "path": "/Temperature", "value": 21]] })
            #expect(
                byTwin["sensor_0001"]?.patch?.json == [["op": "replace", "path": "/Temperature", "value": "warm"]],
                "a model ingress cannot read leaves the value for twin-service to check")
            let letters = try await reader.waitFor(1, on: setup.topics.deadLetter)
            let letter = try DeadLetter(decoding: try #require(letters.first))
            #expect(letter.reason.hasPrefix("unknown device:") && letter.reason.contains("thermo_blocked"), "\(letter.reason)")
            #expect(ingress.check("twin-service")?.ready == true)
        }
        #expect(gateway.queriesTooLarge > 0, "a query was refused for its size")
        #expect(gateway.blockedRequests >= 3, "the blocked device's query and read, and the model, were refused: \(gateway.blockedRequests)")
        #expect(try reader.messages(on: setup.topics.twinCommands).count == thermostats.count + 1, "nothing more was sent")
        try await reader.stop()
        await producer.shutdown()
    }

    /// With twin-service away, ingress is not ready and hands nothing on: the batch waits, and goes
    /// through once twin-service answers.
    @Test func twinServiceAwayHoldsTheBatch() async throws {
        let api = try await TwinServiceAPI(logger: MockKafka().logger)
        try await api.loadModels()
        try await api.putThermostat("thermo_0001", temperature: 20)
        let setup = try IngressSetup(twinsURL: api.url, partitions: 1)
        let producer = try setup.kafka.makeProducer()
        try await producer.send([setup.deviceMessage(Array(#"{"body":{"Temperature":25}}"#.utf8), key: "thermo_0001")])
        let reader = try setup.reader([setup.topics.twinCommands, setup.topics.deadLetter])
        try await withIngress(setup) { ingress in
            let away = await eventually(timeout: .seconds(10)) { ingress.check("twin-service")?.detail.contains("does not answer") == true }
            #expect(away, "\(String(describing: ingress.check("twin-service")))")
            #expect(ingress.check("twin-service")?.ready == false)
            #expect(await eventually(timeout: .seconds(10)) { ingress.check("consumer group")?.ready == true })
            let readyz = try await httpRequest("http://127.0.0.1:\(ingress.port)/readyz")
            #expect(readyz.status == 503 && readyz.text.contains("twin-service"), "\(readyz.text)")
            #expect(try reader.messages().isEmpty, "nothing is sent or dead-lettered while twin-service is away")

            try await withServices([api.application], logger: setup.kafka.logger) {
                let commands = try await reader.waitFor(1, on: setup.topics.twinCommands, timeout: .seconds(20))
                #expect(try commands.map { try $0.command.patch?.json } == [[["op": "replace", "path": "/Temperature", "value": 25]]])
                #expect(await eventually(timeout: .seconds(10)) { ingress.check("twin-service")?.ready == true })
            }
            #expect(try reader.messages(on: setup.topics.deadLetter).isEmpty)
        }
        try await reader.stop()
        await producer.shutdown()
    }
}
