import Foundation

/// kcat as a child process, its stderr kept in a file for the error when it fails. The caller sets
/// its standard input and output before ``run()``.
public final class KcatProcess {
    public let process = Process()
    private let errorFile: URL

    public init(_ arguments: [String]) throws {
        errorFile = FileManager.default.temporaryDirectory.appending(path: "kcat-\(UUID()).err")
        guard FileManager.default.createFile(atPath: errorFile.path, contents: nil) else {
            throw BenchmarkError("cannot create \(errorFile.path) for kcat's stderr")
        }
        process.executableURL = URL(filePath: "/usr/bin/env")
        process.arguments = ["kcat"] + arguments
        process.standardError = try FileHandle(forWritingTo: errorFile)
    }

    public func run() throws { try process.run() }

    /// Waits for kcat to exit; throws with its stderr unless it exited 0.
    public func waitForSuccess() throws {
        process.waitUntilExit()
        defer { try? FileManager.default.removeItem(at: errorFile) }
        guard process.terminationReason == .exit, process.terminationStatus == 0 else {
            let errors = (try? String(contentsOf: errorFile, encoding: .utf8)) ?? ""
            throw BenchmarkError(
                "kcat \(process.arguments?.dropFirst().joined(separator: " ") ?? "") exited with status \(process.terminationStatus):\n\(errors)")
        }
    }
}
