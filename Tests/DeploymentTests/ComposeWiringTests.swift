import Foundation
import Testing
import TwinflowCodec
import TwinflowTestSupport

/// The compose file's wiring, proven without Docker: each Twinflow service's command runs as a
/// local process with the environment the compose file gives it, against a devbroker. Only what
/// points into the containers' network or file system is rewritten: the bootstrap address, the
/// ports (`HTTP_PORT`, and `TWINS_URL`'s), the data folders, the models' folder in the image, and
/// the database (a new one on the test's own PostgreSQL cluster).
/// Then the seed service's script and the simulator run the seed scenario through them.
@Suite(.serialized) struct ComposeWiringTests {
    static let services = ["twin-service", "ingress", "propagator", "tsi-forwarder", "tsi-store"]

    @Test func theComposeServicesRunTheSeedScenarioAsLocalProcesses() async throws {
        let compose = try #require(try ComposeFileTests.compose()["services"]?.objectValue)
        let devbroker = try DevBrokerProcess(partitions: 4)
        defer { devbroker.terminate() }
        let ports = Dictionary(uniqueKeysWithValues: Self.services.map { ($0, unusedPort()) })
        let twinsURL = "http://127.0.0.1:\(ports["twin-service"]!)"
        let binaries = try builtExecutable("twinctl").deletingLastPathComponent().path
        let scratch = ScratchDirectory.make("compose-wiring")

        func environment(of name: String) throws -> [String: String] {
            let service = try #require(compose[name], "\(name) is in the compose file")
            var environment = (service["environment"]?.objectValue ?? [:]).compactMapValues { $0.stringValue }
            environment["KAFKA_BOOTSTRAP_SERVERS"] = devbroker.bootstrap
            if let port = ports[name] { environment["HTTP_PORT"] = "\(port)" }
            if environment["TWINS_URL"] != nil { environment["TWINS_URL"] = twinsURL }
            if environment["TWINFLOW_DATA_DIR"] != nil { environment["TWINFLOW_DATA_DIR"] = scratch.appending(path: name).path }
            if environment["TWINFLOW_DATABASE_URL"] != nil {
                environment["TWINFLOW_DATABASE_URL"] = try PostgresCluster.shared().makeDatabase(name.replacingOccurrences(of: "-", with: ""))
            }
            environment["PATH"] = "\(binaries):/usr/bin:/bin"
            return environment
        }
        func command(of name: String) throws -> [String] {
            let command = compose[name]?["command"]?.arrayValue?.compactMap { $0.stringValue }
            return try #require(command, "\(name) has a command")
        }

        var running: [ChildProcess] = []
        defer { for process in running { process.terminate() } }
        for name in Self.services {
            let command = try command(of: name)
            running.append(try ChildProcess(command[0], arguments: Array(command.dropFirst()), environment: try environment(of: name)))
            if name == "twin-service" { #expect(await TwinServiceEndpoint(port: ports[name]!).waitUntilUp()) }
        }
        for name in Self.services {
            #expect(await waitUntilReady(port: ports[name]!, timeout: .seconds(90)), "\(name) is ready as the compose file starts it")
        }

        // The seed service's script with its entrypoint, as the compose file has them; a second run
        // (the stack started again) finds the scenario loaded and succeeds too.
        let seedScript = try command(of: "seed").joined(separator: "\n").replacingOccurrences(of: "$$", with: "$")
            .replacingOccurrences(of: "/opt/twinflow/models", with: Fixtures.modelsRoot.path)
        let seedEntrypoint = try #require(compose["seed"]?["entrypoint"]?.arrayValue?.compactMap({ $0.stringValue }), "seed has an entrypoint")
        for run in 1...2 {
            let seed = Process()
            seed.executableURL = URL(filePath: seedEntrypoint[0])
            seed.arguments = Array(seedEntrypoint.dropFirst()) + [seedScript]
            seed.environment = try environment(of: "seed")
            seed.standardOutput = FileHandle.nullDevice
            try seed.run()
            seed.waitUntilExit()
            try #require(seed.terminationStatus == 0, "the seed script's run \(run) succeeded")
        }
        let twins = TwinServiceEndpoint(port: ports["twin-service"]!)
        #expect(try await twins.twin("Room_01")["currentTemp"] == 20)

        // The simulator, as the compose file runs it (until stopped), for a few seconds.
        let simulatorCommand = try command(of: "simulator")
        let simulator = try ChildProcess(
            simulatorCommand[0], arguments: Array(simulatorCommand.dropFirst()), environment: try environment(of: "simulator"))
        try await Task.sleep(for: .seconds(4))
        simulator.kill()

        for index in 1...3 {
            let thermostat = "thermo_000\(index)"
            let room = "Room_0\(index)"
            let settled = await eventually(timeout: .seconds(30)) {
                guard let last = try? await twins.twin(thermostat)["Temperature"], last != 20 else { return false }
                return (try? await twins.twin(room)["currentTemp"]) == last
            }
            #expect(settled, "\(room) ends on \(thermostat)'s last reading")
        }
        let stored = await eventually(timeout: .seconds(30)) {
            guard let reply = try? await httpRequest("http://127.0.0.1:\(ports["tsi-store"]!)/timeseries/instances") else { return false }
            return ["thermo_0001", "thermo_0002", "thermo_0003"].allSatisfy { reply.text.contains("\"\($0)\"") }
        }
        #expect(stored, "tsi-store holds each thermostat's series")
    }
}
