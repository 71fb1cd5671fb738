import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
import TwinGraph
import TwinService
import TwinflowCodec
import TwinflowTestSupport

/// twinctl, the built executable, against the REST API on a live port.
@Suite struct TwinCtlTests {
    @Test func uploadsModelsCreatesTwinsAndQueries() async throws {
        let fixture = try await GraphFixture.make()
        let router = Router()
        TwinServiceRoutes.add(to: router, graph: fixture.graph)
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { client in
            let url = "http://127.0.0.1:\(try #require(client.port))"
            let uploaded = try await runTwinCtl(["models", "upload", Fixtures.modelsRoot.appending(path: "seed").path, "--url", url])
            #expect(uploaded.contains("dtmi:contosocom:DigitalTwins:Room;1"))
            try await runTwinCtl([
                "twins", "put", "thermo_0001", "--model", "dtmi:contosocom:DigitalTwins:Thermostat;1", "--properties", #"{"Temperature":20}"#,
                "--url", url,
            ])
            try await runTwinCtl(["twins", "put", "Room_01", "--model", "dtmi:contosocom:DigitalTwins:Room;1", "--url", url])
            try await runTwinCtl(["relationships", "put", "Room_01", "r1", "--name", "rel_has_thermostat", "--target", "thermo_0001", "--url", url])
            try await runTwinCtl(["twins", "patch", "thermo_0001", #"[{"op":"replace","path":"/Temperature","value":22}]"#, "--url", url])
            let lines = try await runTwinCtl(["query", "SELECT T.Temperature FROM DIGITALTWINS T WHERE T.$dtId = 'thermo_0001'", "--url", url])
            #expect(lines == "{\"Temperature\":22}\n")
            let incoming = try await runTwinCtl(["relationships", "incoming", "thermo_0001", "--url", url])
            #expect(incoming.contains("Room_01"))
            await #expect(throws: (any Error).self) { try await runTwinCtl(["twins", "get", "nobody", "--url", url]) }
        }
    }

    /// IDs are sent as one path segment each: `#`, `?`, `%` and spaces do not change which twin is meant.
    @Test func idsWithURLCharactersNameTheirOwnTwin() async throws {
        let fixture = try await GraphFixture.make("seed")
        let router = Router()
        TwinServiceRoutes.add(to: router, graph: fixture.graph)
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { client in
            let url = "http://127.0.0.1:\(try #require(client.port))"
            let room = "dtmi:contosocom:DigitalTwins:Room;1"
            try await runTwinCtl(["twins", "put", "Room_01", "--model", room, "--url", url])
            let odd = "Room_01#a?b=c&d%2F e"
            try await runTwinCtl(["twins", "put", odd, "--model", room, "--url", url])
            #expect(try JSONValue.parse(try await runTwinCtl(["twins", "get", odd, "--url", url]))["$dtId"] == .string(odd))
            try await runTwinCtl(["twins", "put", "thermo_0001", "--model", "dtmi:contosocom:DigitalTwins:Thermostat;1", "--url", url])
            try await runTwinCtl(["relationships", "put", odd, "r#1", "--name", "rel_has_thermostat", "--target", "thermo_0001", "--url", url])
            #expect(try await runTwinCtl(["relationships", "list", odd, "--url", url]).contains("r#1"))
            try await runTwinCtl(["twins", "delete", odd, "--cascade", "--url", url])
            #expect(
                try JSONValue.parse(try await runTwinCtl(["twins", "get", "Room_01", "--url", url]))["$dtId"] == "Room_01", "Room_01 is untouched")
            await #expect(throws: ProcessFailure.self) { try await runTwinCtl(["twins", "get", odd, "--url", url]) }
        }
    }

    /// Numbers a command cannot use are refused with a usage error (exit 64), not a crash.
    @Test(arguments: [
        ["simulate", "--rate", "inf"], ["simulate", "--duration", "1e30"], ["simulate", "--devices", "10000000000"],
        ["watch", "--rooms", "-1"], ["watch", "--interval", "nan"], ["tail", "deadletter", "--count", "0"],
    ])
    func numbersACommandCannotUseAreRefused(arguments: [String]) async throws {
        let failure = try await #require(throws: ProcessFailure.self) { try await runTwinCtl(arguments) }
        #expect(!failure.crashed && failure.status == 64, "\(failure)")
    }

    @discardableResult
    func runTwinCtl(_ arguments: [String]) async throws -> String {
        try await runOffThePool(try builtExecutable("twinctl").path, arguments)
    }
}
