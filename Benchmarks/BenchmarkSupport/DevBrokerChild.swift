import Foundation

/// The devbroker built beside this executable, run as a child process for the benchmark.
public final class DevBrokerChild {
    private let process = Process()
    public let bootstrap: String

    /// A devbroker with the contract's topics, and `topics` with `partitions` partitions each.
    public init(partitions: Int, topics: [String]) throws {
        let directory = URL(filePath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        let file = FileManager.default.temporaryDirectory.appending(path: "kafka-bench-\(UUID()).bootstrap")
        process.executableURL = directory.appending(path: "devbroker")
        process.arguments =
            ["--port", "0", "--partitions", "\(partitions)", "--bootstrap-file", file.path]
            + topics.flatMap { ["--topic", "\($0):\(partitions)"] }
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(30)
        while !FileManager.default.fileExists(atPath: file.path) {
            guard process.isRunning, Date() < deadline else {
                if process.isRunning { process.terminate() }
                throw BenchmarkError("devbroker did not start")
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        Thread.sleep(forTimeInterval: 0.05)
        bootstrap = try String(contentsOf: file, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The child's process ID.
    public var pid: Int32 { process.processIdentifier }

    public func stop() {
        guard process.isRunning else { return }
        process.terminate()
        process.waitUntilExit()
    }

    /// A run that fails while starting what uses the broker leaves no broker behind.
    deinit { stop() }
}

public struct BenchmarkError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

extension Duration {
    public var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

/// Runs a benchmark; a failure ends the process with status 1 after `<name> FAILED: <why>` on
/// stderr, once `body`'s children were stopped (its `defer`s ran).
public func runBenchmark(_ name: String, _ body: () async throws -> Void) async {
    do {
        try await body()
    } catch {
        fflush(nil)  // what was printed comes before the failure's line
        FileHandle.standardError.write(Data("\(name) FAILED: \(error)\n".utf8))
        exit(1)
    }
}
