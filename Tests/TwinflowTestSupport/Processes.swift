import Foundation

/// An executable of this package running as a child process; stopped (SIGTERM) when released.
public final class ChildProcess {
    public let process = Process()

    /// Starts `name` (see ``builtExecutable(_:)``) with its output discarded.
    public init(_ name: String, arguments: [String] = [], environment: [String: String]? = nil) throws {
        process.executableURL = builtExecutable(name)
        process.arguments = arguments
        if let environment { process.environment = environment }
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
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
    }
}

/// A devbroker child process on a port of its own.
public final class DevBrokerProcess {
    public let bootstrap: String
    private let child: ChildProcess

    public init(partitions: Int, extraTopics: [String] = []) throws {
        let port = Int.random(in: 20000..<30000)
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

/// An executable of this package, built beside the test binary (`devbroker`, `twinctl`, `twin-service`).
public func builtExecutable(_ name: String) -> URL {
    var directory = URL(filePath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
    for _ in 0..<4 {
        let candidate = directory.appending(path: name)
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        directory = directory.deletingLastPathComponent()
    }
    return URL(filePath: #filePath).deletingLastPathComponent().appending(path: "../../.build/debug/\(name)").standardized
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
    guard process.terminationStatus == 0 else {
        throw ProcessFailure(command: command, status: process.terminationStatus)
    }
    return String(decoding: data, as: UTF8.self)
}

/// A child process that exited with a failure.
public struct ProcessFailure: Error, CustomStringConvertible {
    public var command: String
    public var status: Int32
    public var description: String { "\(command) exited with \(status)" }
}
