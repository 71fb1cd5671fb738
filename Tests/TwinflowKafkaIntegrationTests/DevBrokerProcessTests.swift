import Foundation
import Logging
import Testing
import TwinflowCodec
import TwinflowKafka

/// devbroker as users run it: a separate process, reached at a fixed localhost port, used with kcat.
@Suite(.serialized) struct DevBrokerProcessTests {
    @Test func kcatListsProducesAndConsumesThroughDevbroker() async throws {
        let devbroker = try DevBrokerProcess(partitions: 3, extraTopics: ["bench.extra:5"])
        defer { devbroker.terminate() }

        let listing = try run("kcat", ["-b", devbroker.bootstrap, "-L", "-m", "10"])
        for topic in Topics.defaults.all {
            #expect(listing.contains("topic \"\(topic)\" with 3 partitions"), "\(topic) listed")
        }
        #expect(listing.contains("topic \"bench.extra\" with 5 partitions"))

        _ = try run("kcat", ["-b", devbroker.bootstrap, "-P", "-t", "iothub.d2c", "-k", "thermo_0001", "-X", "partitioner=murmur2_random"], input: #"{"Temperature":21.5}"#)
        let consumed = try run("kcat", ["-b", devbroker.bootstrap, "-C", "-t", "iothub.d2c", "-e", "-q", "-f", "%k %s\\n"])
        #expect(consumed == "thermo_0001 {\"Temperature\":21.5}\n")

        let kafka = KafkaConfiguration(bootstrapServers: devbroker.bootstrap)
        let producer = try KafkaProducer(configuration: KafkaProducerConfiguration(kafka: kafka), logger: .init(label: "test"))
        let report = try await producer.send(KafkaProducerMessage(topic: "iothub.d2c", key: "thermo_0001", value: Array("{}".utf8)))
        await producer.shutdown()
        #expect(report.offset == 1, "the Swift producer's message follows kcat's on the same partition")

        #expect(devbroker.terminate() == 0, "devbroker exits cleanly on SIGTERM")
    }
}

/// A devbroker child process on a port of its own.
final class DevBrokerProcess {
    let process = Process()
    let bootstrap: String
    private let bootstrapFile: URL

    init(partitions: Int, extraTopics: [String] = []) throws {
        let port = Int.random(in: 20000..<30000)
        bootstrapFile = FileManager.default.temporaryDirectory.appending(path: "devbroker-\(UUID()).bootstrap")
        process.executableURL = Self.executable
        process.arguments = ["--port", "\(port)", "--partitions", "\(partitions)", "--bootstrap-file", bootstrapFile.path]
            + extraTopics.flatMap { ["--topic", $0] }
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(20)
        while !FileManager.default.fileExists(atPath: bootstrapFile.path) && Date() < deadline && process.isRunning {
            Thread.sleep(forTimeInterval: 0.05)
        }
        bootstrap = (try String(contentsOf: bootstrapFile, encoding: .utf8)).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(bootstrap == "localhost:\(port)")
    }

    @discardableResult
    func terminate() -> Int32 {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
        return process.terminationStatus
    }

    /// `devbroker`, built beside the test binary.
    static var executable: URL {
        let testBinary = URL(filePath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var directory = testBinary.deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = directory.appending(path: "devbroker")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            directory = directory.deletingLastPathComponent()
        }
        return URL(filePath: #filePath).deletingLastPathComponent().appending(path: "../../.build/debug/devbroker").standardized
    }
}

/// Runs a command to completion and returns its standard output; a non-zero exit is an error.
@discardableResult
func run(_ command: String, _ arguments: [String], input: String? = nil) throws -> String {
    let process = Process()
    process.executableURL = URL(filePath: "/usr/bin/env")
    process.arguments = [command] + arguments
    let output = Pipe()
    process.standardOutput = output
    process.standardError = FileHandle.nullDevice
    let stdin = Pipe()
    process.standardInput = stdin
    try process.run()
    if let input { stdin.fileHandleForWriting.write(Data(input.utf8)) }
    try stdin.fileHandleForWriting.close()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw CodecError(field: command, reason: "exited with \(process.terminationStatus)")
    }
    return String(decoding: data, as: UTF8.self)
}
