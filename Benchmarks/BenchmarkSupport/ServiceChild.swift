import Foundation

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A Twinflow executable built beside this benchmark (the release binaries), run as a child process
/// with this process's environment plus `environment`, its standard output discarded.
public final class ServiceChild: Sendable {
    public let name: String
    public let httpPort: Int
    private let process = Process()

    public init(_ name: String, environment: [String: String], httpPort: Int = BenchmarkPorts.take()) throws {
        self.name = name
        self.httpPort = httpPort
        process.executableURL = Self.sibling(name)
        var merged = ProcessInfo.processInfo.environment
        merged["HTTP_PORT"] = "\(httpPort)"
        merged["LOG_LEVEL"] = merged["LOG_LEVEL"] ?? "error"
        merged.merge(environment) { _, new in new }
        process.environment = merged
        process.standardOutput = FileHandle.nullDevice
        try process.run()
    }

    /// The child's process ID.
    public var pid: Int32 { process.processIdentifier }

    /// An executable beside this one.
    public static func sibling(_ name: String) -> URL {
        URL(filePath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().appending(path: name)
    }

    public var isRunning: Bool { process.isRunning }

    /// Throws when the child has exited: nothing more will come from it.
    public func checkRunning() throws {
        guard process.isRunning else { throw BenchmarkError("\(name) exited with status \(process.terminationStatus)") }
    }

    /// Waits until `GET path` on its HTTP port answers 200 (and holds `text`, when given).
    public func waitUntilAnswering(
        _ path: String = "/healthz", containing text: String? = nil, within timeout: Duration = .seconds(60)
    )
        async throws
    {
        let deadline = ContinuousClock.now + timeout
        let url = URL(string: "http://127.0.0.1:\(httpPort)\(path)")!
        while ContinuousClock.now < deadline {
            try checkRunning()
            if let (data, response) = try? await URLSession.shared.data(from: url), (response as? HTTPURLResponse)?.statusCode == 200,
                text.map({ String(decoding: data, as: UTF8.self).contains($0) }) ?? true
            {
                return
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw BenchmarkError("\(name) did not answer \(path) with 200 at \(url) within \(timeout)")
    }

    public func pause() { kill(process.processIdentifier, SIGSTOP) }

    public func resume() { kill(process.processIdentifier, SIGCONT) }

    public func stop() {
        guard process.isRunning else { return }
        resume()
        process.terminate()
        process.waitUntilExit()
    }

    deinit { stop() }
}

/// The sum of the counters `names` in the `/metrics` a service on `port` answers (Prometheus' text
/// format; a counter it does not show counts 0).
public func metricsCounters(port: Int, _ names: [String]) async throws -> Int {
    let (data, _) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(port)/metrics")!)
    var sum = 0
    for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
        guard let space = line.firstIndex(of: " "), names.contains(String(line[..<space])) else { continue }
        sum += Int(Double(line[line.index(after: space)...]) ?? 0)
    }
    return sum
}
