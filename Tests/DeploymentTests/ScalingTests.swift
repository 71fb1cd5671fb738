import Foundation
import Logging
import Testing
import TwinflowCodec
import TwinflowKafka
import TwinflowTestSupport

/// The stateless services scaled out, and one instance of each killed mid-run.
@Suite(.serialized) struct ScalingTests {
    static let devices = 8
    static let readingsPerDevice = 150

    /// Two instances each of ingress, propagator and tsi-forwarder share their groups' partitions
    /// (with one twin-service and one tsi-store); one of each is killed with SIGKILL halfway while
    /// device messages flow, and the groups rebalance. Nothing is lost: every device message reaches
    /// tsi-store as its own time-series event, and every room ends on its thermostat's last value.
    @Test func killingAnInstanceOfEachScaledServiceLosesNothing() async throws {
        let devbroker = try DevBrokerProcess(partitions: 8)
        defer { devbroker.terminate() }
        let twinPort = unusedPort()
        let twinService = try twinServiceProcess(bootstrap: devbroker.bootstrap, port: twinPort)
        defer { twinService.terminate() }
        let twins = TwinServiceEndpoint(port: twinPort)
        try #require(await twins.waitUntilUp())
        try await twins.uploadModels("seed")
        for index in 1...Self.devices {
            try await twins.putTwin(Self.thermostat(index), model: "dtmi:contosocom:DigitalTwins:Thermostat;1", ["Temperature": 0])
            try await twins.putTwin(Self.room(index), model: "dtmi:contosocom:DigitalTwins:Room;1")
            try await twins.relate(Self.room(index), "r\(index)", name: "rel_has_thermostat", target: Self.thermostat(index))
        }
        let storePort = unusedPort()
        let store = try serviceProcess(
            "tsi-store", bootstrap: devbroker.bootstrap, port: storePort,
            environment: ["TWINFLOW_DATA_DIR": ScratchDirectory.make("scaling-tsi").path])
        defer { store.terminate() }

        var instances: [String: [(process: ChildProcess, port: Int)]] = [:]
        for name in ["ingress", "propagator", "tsi-forwarder"] {
            for _ in 0..<2 {
                let port = unusedPort()
                instances[name, default: []].append(
                    (try serviceProcess(name, bootstrap: devbroker.bootstrap, port: port, environment: ["TWINS_URL": twins.url]), port))
            }
        }
        defer { for (_, group) in instances { for instance in group { instance.process.terminate() } } }
        for (name, group) in instances {
            for instance in group {
                #expect(await waitUntilReady(port: instance.port, containing: "assigned", timeout: .seconds(90)), "\(name) on \(instance.port)")
            }
        }
        #expect(await waitUntilReady(port: storePort, timeout: .seconds(60)))

        let producer = try KafkaProducer(
            configuration: KafkaProducerConfiguration(kafka: KafkaConfiguration(bootstrapServers: devbroker.bootstrap)), logger: Logger(label: "test")
        )
        let start = Date().addingTimeInterval(-3600)
        for reading in 0..<Self.readingsPerDevice {
            if reading == Self.readingsPerDevice / 2 {
                for (name, group) in instances {
                    group[0].process.kill()
                    #expect(group[0].process.process.terminationReason == .uncaughtSignal, "\(name)'s first instance was killed")
                }
            }
            try await producer.send(
                (1...Self.devices).map { index in
                    DeviceMessage(
                        deviceID: Self.thermostat(index), enqueuedTime: Timestamp.string(from: start.addingTimeInterval(Double(reading))),
                        messageID: "m-\(index)-\(reading)", body: ["Temperature": .double(Self.value(index, reading))]
                    ).kafkaMessage(topic: Topics.defaults.deviceMessages)
                })
            try await Task.sleep(for: .milliseconds(20))
        }
        await producer.shutdown()

        for index in 1...Self.devices {
            let last = JSONValue.double(Self.value(index, Self.readingsPerDevice - 1))
            let settled = await eventually(timeout: .seconds(90)) {
                let thermostat = try? await twins.twin(Self.thermostat(index))
                let room = try? await twins.twin(Self.room(index))
                return thermostat?["Temperature"] == last && room?["currentTemp"] == last
            }
            #expect(settled, "\(Self.room(index)) ends on \(Self.thermostat(index))'s last reading")
            let body: JSONValue = [
                "getEvents": [
                    "timeSeriesId": [.string(Self.thermostat(index))],
                    "searchSpan": [
                        "from": .string(Timestamp.string(from: start.addingTimeInterval(-60))), "to": .string(Timestamp.string(from: Date())),
                    ],
                    "take": 100_000,
                ]
            ]
            let stored = await eventually(timeout: .seconds(30)) {
                guard let reply = try? await httpRequest("http://127.0.0.1:\(storePort)/timeseries/query", method: "POST", body: body.serialized()),
                    let events = try? JSONValue.parse(reply.body)["timestamps"]?.arrayValue
                else { return false }
                return events.count >= Self.readingsPerDevice
            }
            let reply = try await httpRequest("http://127.0.0.1:\(storePort)/timeseries/query", method: "POST", body: body.serialized())
            let count = try JSONValue.parse(reply.body)["timestamps"]?.arrayValue?.count
            #expect(stored && count == Self.readingsPerDevice, "\(Self.thermostat(index)): each device message once in tsi-store (\(count ?? -1))")
        }
    }

    static func thermostat(_ index: Int) -> String { String(format: "thermo_%04d", index) }
    static func room(_ index: Int) -> String { String(format: "Room_%02d", index) }
    static func value(_ device: Int, _ reading: Int) -> Double { Double(device * 100) + Double(reading) / 4 }
}
