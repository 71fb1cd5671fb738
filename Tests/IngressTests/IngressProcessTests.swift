import Foundation
import Logging
import ServiceLifecycle
import Testing
import TwinGraph
import TwinService
import TwinflowCodec
import TwinflowKafka
import TwinflowRuntime
import TwinflowTestSupport

/// ingress as separate processes on a devbroker: two instances sharing the partitions with one
/// killed halfway, and the whole path from device messages to twin-service's notifications.
@Suite(.serialized) struct IngressProcessTests {
    static let devices = 20
    static let messagesPerDevice = 400

    /// Two instances share the device topic's partitions; one is killed with SIGKILL while messages
    /// flow. twin-service (its commands consumer in this process) applies what they send: every
    /// twin ends on its device's last value, and its version counts each message once.
    @Test func twoInstancesOneKilledDeliverEveryEffectOnce() async throws {
        let devbroker = try DevBrokerProcess(partitions: 8)
        defer { devbroker.terminate() }
        var logger = Logger(label: "ingress-process-test")
        logger.logLevel = .warning
        let kafka = KafkaConfiguration(bootstrapServers: devbroker.bootstrap)
        let api = try await TwinServiceAPI(logger: logger)
        try await api.loadModels()
        for device in 0..<Self.devices { try await api.putThermostat(Self.deviceID(device), temperature: -1) }
        let twinService = try TwinServiceKafka.services(
            graph: api.graph,
            environment: ServiceEnvironment(
                serviceName: "twin-service", defaultHTTPPort: 0, variables: ["KAFKA_BOOTSTRAP_SERVERS": devbroker.bootstrap]),
            logger: logger)

        let reader = try TopicReader(kafka: kafka, topics: [Topics.defaults.twinCommands], logger: logger)
        let producer = try KafkaProducer(configuration: KafkaProducerConfiguration(kafka: kafka), logger: logger)
        try await withServices([api.application] + twinService, logger: logger) {
            let ports = [unusedPort(), unusedPort()]
            let first = try ingressProcess(bootstrap: devbroker.bootstrap, twinsURL: api.url, port: ports[0])
            let second = try ingressProcess(bootstrap: devbroker.bootstrap, twinsURL: api.url, port: ports[1])
            defer { second.terminate() }
            for port in ports {
                let shared = await eventually(timeout: .seconds(60)) {
                    guard let reply = try? await httpRequest("http://127.0.0.1:\(port)/readyz") else { return false }
                    return reply.status == 200 && reply.text.contains("partition(s) assigned")
                }
                #expect(shared, "instance on port \(port) is ready with partitions of its own")
            }

            let sending = Task {
                for round in 0..<Self.messagesPerDevice {
                    let batch = (0..<Self.devices).map { device in
                        Self.deviceMessage(device: device, sequence: round).kafkaMessage(topic: Topics.defaults.deviceMessages)
                    }
                    try await producer.send(batch)
                    if round % 10 == 9 { try await Task.sleep(for: .milliseconds(25)) }
                }
            }
            let total = Self.devices * Self.messagesPerDevice
            let halfway = await eventually(timeout: .seconds(60)) { ((try? reader.messages().count) ?? 0) >= total / 2 }
            #expect(halfway, "commands flow before the kill")
            first.kill()
            #expect(first.process.terminationReason == .uncaughtSignal && first.process.terminationStatus == SIGKILL, "the instance was killed")
            try await sending.value

            let everyID = await eventually(timeout: .seconds(120)) {
                Set(((try? reader.messages()) ?? []).compactMap { try? TwinCommand(decoding: $0).id }).count >= total
            }
            #expect(everyID, "a command for every device message")
            let graph = api.graph
            let applied = await eventually(timeout: .seconds(60)) {
                for device in 0..<Self.devices {
                    guard let twin = try? await graph.twin(Self.deviceID(device)), twin.version == Int64(1 + Self.messagesPerDevice) else {
                        return false
                    }
                }
                return true
            }
            #expect(applied, "each twin's version counts its creation and each of its device's messages once")
            for device in 0..<Self.devices {
                let twin = try await api.graph.twin(Self.deviceID(device))
                #expect(twin.document["Temperature"] == .double(Self.temperature(Self.messagesPerDevice - 1)), "\(Self.deviceID(device))")
                #expect(twin.version == Int64(1 + Self.messagesPerDevice), "\(Self.deviceID(device)): no command applied twice")
            }
            let commands = try reader.messages().map { try TwinCommand(decoding: $0) }
            let repeats = commands.count - Set(commands.map(\.id)).count
            print("ingress kill test: \(commands.count) commands for \(total) device messages, \(repeats) sent again after the kill")
            #expect(second.terminate() == 0, "the surviving instance stops cleanly on SIGTERM")
        }
        try await reader.stop()
        await producer.shutdown()
    }

    /// devbroker, twin-service and ingress as separate processes: IoT Hub's messages in, the twins'
    /// Temperature set, and Twin.Update notifications out.
    @Test func deviceMessagesUpdateTwinsThroughTwinService() async throws {
        let devbroker = try DevBrokerProcess(partitions: 4)
        defer { devbroker.terminate() }
        var logger = Logger(label: "ingress-e2e-test")
        logger.logLevel = .warning
        let kafka = KafkaConfiguration(bootstrapServers: devbroker.bootstrap)
        let twinsPort = unusedPort()
        let twinService = try twinServiceProcess(bootstrap: devbroker.bootstrap, port: twinsPort)
        defer { twinService.terminate() }
        let twinsURL = "http://127.0.0.1:\(twinsPort)"
        #expect(await eventually(timeout: .seconds(30)) { (try? await httpRequest("\(twinsURL)/healthz"))?.status == 200 })
        let upload = try await httpRequest("\(twinsURL)/models", method: "POST", body: try Fixtures.upload("seed").serialized())
        try #require(upload.status == 201, "\(upload.text)")
        for (id, body) in [
            ("thermo_0001", #"{"$metadata":{"$model":"dtmi:contosocom:DigitalTwins:Thermostat;1"},"Temperature":20}"#),
            ("thermo_0002", #"{"$metadata":{"$model":"dtmi:contosocom:DigitalTwins:Thermostat;1"}}"#),
        ] {
            let reply = try await httpRequest("\(twinsURL)/digitaltwins/\(id)", method: "PUT", body: Array(body.utf8))
            try #require(reply.status == 200, "\(reply.text)")
        }

        let ingressPort = unusedPort()
        let ingress = try ingressProcess(bootstrap: devbroker.bootstrap, twinsURL: twinsURL, port: ingressPort)
        defer { ingress.terminate() }
        let reader = try TopicReader(kafka: kafka, topics: [Topics.defaults.twinEvents, Topics.defaults.telemetry], logger: logger)
        let producer = try KafkaProducer(configuration: KafkaProducerConfiguration(kafka: kafka), logger: logger)
        try await producer.send([
            KafkaProducerMessage(
                topic: Topics.defaults.deviceMessages, key: "thermo_0001", value: try Fixtures.file("iothub/device-telemetry-eventgrid.json")),
            KafkaProducerMessage(
                topic: Topics.defaults.deviceMessages, key: "thermo_0002", value: try Fixtures.file("iothub/device-telemetry-data.json")),
            KafkaProducerMessage(
                topic: Topics.defaults.deviceMessages, key: "thermo_0002", value: try Fixtures.file("iothub/device-telemetry-base64-body.json")),
        ])

        let updates = try await eventually(timeout: .seconds(60)) {
            try reader.messages(on: Topics.defaults.twinEvents).filter {
                (try? CloudEvent(decoding: $0).attributes.type) == "Microsoft.DigitalTwins.Twin.Update"
            }.count >= 3
        }
        #expect(updates, "a Twin.Update for each device message")
        let events = try reader.messages(on: Topics.defaults.twinEvents).map { try CloudEvent(decoding: $0) }
            .filter { $0.attributes.type == "Microsoft.DigitalTwins.Twin.Update" }
        let patches = Dictionary(grouping: events, by: { $0.attributes.subject ?? "" }).mapValues { $0.map { $0.data?["patch"] ?? .null } }
        #expect(patches["thermo_0001"] == [[["op": "replace", "path": "/Temperature", "value": 21.5]]])
        #expect(
            patches["thermo_0002"] == [
                [["op": "add", "path": "/Temperature", "value": 22.25]], [["op": "replace", "path": "/Temperature", "value": 23]],
            ], "the first reading lands as add, then replace, in the device's order")
        #expect(events.allSatisfy { $0.data?["modelId"] == "dtmi:contosocom:DigitalTwins:Thermostat;1" })
        let twin = try await httpRequest("\(twinsURL)/digitaltwins/thermo_0002")
        #expect(try JSONValue.parse(twin.body)["Temperature"] == 23, "\(twin.text)")
        let first = try await httpRequest("\(twinsURL)/digitaltwins/thermo_0001")
        #expect(try JSONValue.parse(first.body)["Temperature"] == 21.5)
        #expect(try JSONValue.parse(first.body)["$metadata"]?["Temperature"]?["sourceTime"] == "2026-11-26T17:00:00.48Z", "\(first.text)")
        let telemetry = try await reader.waitFor(3, on: Topics.defaults.telemetry)
        #expect(
            try telemetry.map { try BinaryCloudEvent(decoding: $0).attributes.id }.contains(
                "device/thermo_0002/message/thermo_0002-msg-1/2026-11-26T17:00:01.112Z"))
        #expect(ingress.terminate() == 0, "ingress stops cleanly on SIGTERM")
        try await reader.stop()
        await producer.shutdown()
    }

    static func deviceID(_ index: Int) -> String { "thermo_\(index)" }

    static func temperature(_ sequence: Int) -> Double { Double(sequence) / 4 }

    static func deviceMessage(device: Int, sequence: Int) -> DeviceMessage {
        DeviceMessage(
            deviceID: deviceID(device), enqueuedTime: Timestamp.now(), messageID: "m-\(sequence)",
            body: ["Temperature": .double(temperature(sequence))])
    }
}

/// `ingress` as a child process.
func ingressProcess(bootstrap: String, twinsURL: String, port: Int, extra: [String: String] = [:]) throws -> ChildProcess {
    try serviceProcess("ingress", bootstrap: bootstrap, port: port, environment: ["TWINS_URL": twinsURL].merging(extra) { _, new in new })
}
