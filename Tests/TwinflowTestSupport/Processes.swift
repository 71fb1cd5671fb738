import Foundation

/// An executable of this package running as a child process; stopped (SIGTERM) when released.
public final class ChildProcess {
    public let process = Process()
    private let standardErrorFile: URL?

    /// Starts `name` (see ``builtExecutable(_:)``) with its standard output discarded, and its
    /// standard error too unless `capturingStandardError` (then read it with ``standardErrorText``).
    public init(_ name: String, arguments: [String] = [], environment: [String: String]? = nil, capturingStandardError: Bool = false) throws {
        process.executableURL = try builtExecutable(name)
        process.arguments = arguments
        if let environment { process.environment = environment }
        process.standardOutput = FileHandle.nullDevice
        if capturingStandardError {
            let file = FileManager.default.temporaryDirectory.appending(path: "\(name)-\(UUID()).stderr")
            _ = FileManager.default.createFile(atPath: file.path, contents: nil)
            process.standardError = try FileHandle(forWritingTo: file)
            standardErrorFile = file
        } else {
            process.standardError = FileHandle.nullDevice
            standardErrorFile = nil
        }
        try process.run()
    }

    /// What the process wrote to standard error so far (when captured).
    public var standardErrorText: String {
        guard let standardErrorFile, let data = FileManager.default.contents(atPath: standardErrorFile.path) else { return "" }
        return String(decoding: data, as: UTF8.self)
    }

    /// Waits for the process to exit by itself; its status, or nil when it still runs after `timeout`.
    public func exitStatus(within timeout: Duration) async -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        return process.isRunning ? nil : process.terminationStatus
    }

    /// SIGKILL: no chance to finish anything.
    public func kill() {
        Foundation.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// SIGTERM, then waits; the exit status.
    @discardableResult
    public func terminate() -> Int32 {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
        return process.terminationStatus
    }

    deinit {
        terminate()
        if let standardErrorFile { try? FileManager.default.removeItem(at: standardErrorFile) }
    }
}

/// A devbroker child process on a port of its own.
public final class DevBrokerProcess {
    public let bootstrap: String
    private let child: ChildProcess

    /// A devbroker relaying `port` (a random one when nil) to its first mock broker.
    public init(partitions: Int, extraTopics: [String] = [], port: Int? = nil) throws {
        let port = port ?? Int.random(in: 20000..<30000)
        let bootstrapFile = FileManager.default.temporaryDirectory.appending(path: "devbroker-\(UUID()).bootstrap")
        child = try ChildProcess(
            "devbroker",
            arguments: ["--port", "\(port)", "--partitions", "\(partitions)", "--bootstrap-file", bootstrapFile.path]
                + extraTopics.flatMap { ["--topic", $0] }
        )
        let deadline = Date().addingTimeInterval(20)
        while !FileManager.default.fileExists(atPath: bootstrapFile.path) && Date() < deadline && child.process.isRunning {
            Thread.sleep(forTimeInterval: 0.05)
        }
        bootstrap = (try String(contentsOf: bootstrapFile, encoding: .utf8)).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @discardableResult
    public func terminate() -> Int32 { child.terminate() }
}

/// An executable of this package, built beside the test binary (`devbroker`, `twinctl`,
/// `twin-service`). A test refuses one that is missing, or older than a source file of the package
/// (`make test` builds them all first): it would test code that is not the code in the tree.
public func builtExecutable(_ name: String) throws -> URL {
    var directory = URL(filePath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
    var found: URL?
    for _ in 0..<4 where found == nil {
        let candidate = directory.appending(path: name)
        if FileManager.default.isExecutableFile(atPath: candidate.path) { found = candidate }
        directory = directory.deletingLastPathComponent()
    }
    guard let executable = found else {
        throw StaleExecutable(description: "\(name) is not built beside the tests; run `make test` (or `swift build --build-tests`)")
    }
    let built = (try? executable.resourceValues(forKeys: [.contentModificationDateKey]).contentModificationDate) ?? .distantPast
    if let newer = SourceTree.newestSource(of: name), newer.date > built {
        throw StaleExecutable(
            description: "\(executable.path) is older than \(newer.path); run `make test` (or `swift build --build-tests`) to build it again")
    }
    return executable
}

/// An executable a test would start that does not match the sources.
public struct StaleExecutable: Error, CustomStringConvertible {
    public var description: String
}

/// The package's sources, for telling whether an executable was built from them.
enum SourceTree {
    static let root = URL(filePath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The folders an executable is built from (its own folder and the shared modules it links).
    static func folders(of executable: String) -> [String] {
        switch executable {
        case "devbroker": ["Services/devbroker", "Shared/KafkaRecords", "Shared/TwinflowKafka", "Shared/TwinflowCodec"]
        case "twinctl": ["Services/twinctl", "Shared/KafkaRecords", "Shared/TwinflowCodec", "Shared/TwinflowKafka"]
        case "ingress": ["Services/ingress", "Services/twin-service/TwinGraph", "Shared"]
        case "propagator": ["Services/propagator", "Services/twin-service/TwinGraph", "Shared"]
        case "tsi-forwarder":
            [
                "Services/tsi-forwarder", "Shared/KafkaRecords", "Shared/TwinflowKafka", "Shared/TwinflowCodec", "Shared/TwinflowRuntime",
                "Shared/CTCMalloc",
            ]
        default: ["Services/\(executable)", "Shared"]
        }
    }

    /// The most recently changed Swift file the executable is built from, and when it changed.
    static func newestSource(of executable: String) -> (path: String, date: Date)? {
        var newest: (path: String, date: Date)?
        for folder in folders(of: executable) {
            guard
                let files = FileManager.default.enumerator(
                    at: root.appending(path: folder), includingPropertiesForKeys: [.contentModificationDateKey])
            else { continue }
            for case let file as URL in files where file.pathExtension == "swift" {
                guard let date = try? file.resourceValues(forKeys: [.contentModificationDateKey]).contentModificationDate else { continue }
                if newest.map({ date > $0.date }) ?? true { newest = (file.path, date) }
            }
        }
        return newest
    }
}

/// Runs a command to completion and returns its standard output; a non-zero exit is an error.
@discardableResult
public func run(_ command: String, _ arguments: [String], input: String? = nil) throws -> String {
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
    guard process.terminationStatus == 0, process.terminationReason == .exit else {
        throw ProcessFailure(command: command, status: process.terminationStatus, crashed: process.terminationReason == .uncaughtSignal)
    }
    return String(decoding: data, as: UTF8.self)
}

/// ``run(_:_:input:)`` waited for on a thread of its own, not on the cooperative pool: a server in
/// the test's process (which answers on that pool) keeps answering the command meanwhile.
public func runOffThePool(_ command: String, _ arguments: [String], input: String? = nil) async throws -> String {
    try await withCheckedThrowingContinuation { (done: CheckedContinuation<String, any Error>) in
        Thread { done.resume(with: Result { try run(command, arguments, input: input) }) }.start()
    }
}

/// A child process that exited with a failure, or was ended by a signal (`status` is then the signal).
public struct ProcessFailure: Error, CustomStringConvertible {
    public var command: String
    public var status: Int32
    public var crashed = false
    public var description: String { crashed ? "\(command) ended by signal \(status)" : "\(command) exited with \(status)" }
}
