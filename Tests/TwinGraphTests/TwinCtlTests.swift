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
            let uploaded = try runTwinCtl(["models", "upload", Fixtures.modelsRoot.appending(path: "seed").path, "--url", url])
            #expect(uploaded.contains("dtmi:contosocom:DigitalTwins:Room;1"))
            try runTwinCtl([
                "twins", "put", "thermo_0001", "--model", "dtmi:contosocom:DigitalTwins:Thermostat;1", "--properties", #"{"Temperature":20}"#,
                "--url", url,
            ])
            try runTwinCtl(["twins", "put", "Room_01", "--model", "dtmi:contosocom:DigitalTwins:Room;1", "--url", url])
            try runTwinCtl(["relationships", "put", "Room_01", "r1", "--name", "rel_has_thermostat", "--target", "thermo_0001", "--url", url])
            try runTwinCtl(["twins", "patch", "thermo_0001", #"[{"op":"replace","path":"/Temperature","value":22}]"#, "--url", url])
            let lines = try runTwinCtl(["query", "SELECT T.Temperature FROM DIGITALTWINS T WHERE T.$dtId = 'thermo_0001'", "--url", url])
            #expect(lines == "{\"Temperature\":22}\n")
            let incoming = try runTwinCtl(["relationships", "incoming", "thermo_0001", "--url", url])
            #expect(incoming.contains("Room_01"))
            #expect(throws: (any Error).self) { try runTwinCtl(["twins", "get", "nobody", "--url", url]) }
        }
    }

    @discardableResult
    func runTwinCtl(_ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = try builtExecutable("twinctl")
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw CodecError(field: "twinctl", reason: "exited with \(process.terminationStatus)") }
        return String(decoding: data, as: UTF8.self)
    }
}
