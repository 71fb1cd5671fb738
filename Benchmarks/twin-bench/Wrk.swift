import BenchmarkSupport
import Foundation

/// wrk, the HTTP load generator, for the measurements that need many requests from clients that
/// cost the 2-core machine little: a Lua script picks each request.
///
/// A run counts only when wrk exited 0, every request was answered with a 2xx, no socket error or
/// timeout happened, and every figure was read from its output; otherwise ``run(port:connections:seconds:method:body:request:)``
/// throws a ``WrkError`` that carries wrk's output as it was.
enum Wrk {
    struct Result {
        var requests: Int
        var requestsPerSecond: Double
        var p50Milliseconds: Double
        var p99Milliseconds: Double
    }

    static var isAvailable: Bool {
        FileManager.default.isExecutableFile(atPath: "/usr/bin/wrk")
    }

    /// Runs wrk for `seconds` with `connections` connections; `request` is the Lua body of `request = function() … end`.
    static func run(port: Int, connections: Int, seconds: Int, method: String = "GET", body: String? = nil, request: String) throws -> Result {
        var script = "wrk.method = \"\(method)\"\n"
        if let body {
            script += "wrk.body = '\(body)'\nwrk.headers[\"Content-Type\"] = \"application/json\"\n"
        }
        script += "request = function()\n  \(request)\nend\n"
        let file = FileManager.default.temporaryDirectory.appending(path: "twin-bench-\(UUID()).lua")
        try Data(script.utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }

        let process = Process()
        process.executableURL = URL(filePath: "/usr/bin/wrk")
        let url = "http://127.0.0.1:\(port)"
        process.arguments = ["-t1", "-c\(connections)", "-d\(seconds)s", "-s", file.path, "--latency", url]
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        // wrk writes little to stderr, so reading it after stdout's end cannot block wrk.
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let errorText = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return try WrkOutput(stdout: text, stderr: errorText, exitStatus: process.terminationStatus, target: url).result()
    }
}

/// Why a wrk run does not count, with the output that shows it.
struct WrkError: Error, CustomStringConvertible {
    var problem: String
    var output: WrkOutput

    var description: String {
        var text = "wrk run against \(output.target) does not count: \(problem)\n--- wrk's output (exit status \(output.exitStatus)) ---\n"
        text += output.stdout.isEmpty ? "(nothing on stdout)\n" : output.stdout
        if !output.stderr.isEmpty { text += "--- wrk's stderr ---\n" + output.stderr }
        return text + "--- end of wrk's output ---"
    }
}

/// What one wrk run printed, and the figures read from it.
struct WrkOutput {
    var stdout: String
    var stderr: String
    var exitStatus: Int32
    var target: String

    private var lines: [Substring] { stdout.split(separator: "\n") }

    /// The figures, or the first reason the run does not count.
    func result() throws(WrkError) -> Wrk.Result {
        guard exitStatus == 0 else { throw WrkError(problem: "wrk exited with status \(exitStatus)", output: self) }
        // wrk prints `Socket errors: connect N, read N, write N, timeout N` only when one is not 0.
        if let socketErrors = line(startingWith: "Socket errors:") {
            throw WrkError(problem: "wrk saw socket errors or timeouts (\(socketErrors.trimmingCharacters(in: .whitespaces)))", output: self)
        }
        if let non2xx = line(startingWith: "Non-2xx or 3xx responses:") {
            throw WrkError(problem: "some responses were not 2xx (\(non2xx.trimmingCharacters(in: .whitespaces)))", output: self)
        }
        let requests = try requestCount()
        guard requests > 0 else { throw WrkError(problem: "wrk completed no request", output: self) }
        return Wrk.Result(
            requests: requests,
            requestsPerSecond: try number(in: "Requests/sec:"),
            p50Milliseconds: try percentileMilliseconds("50%"),
            p99Milliseconds: try percentileMilliseconds("99%")
        )
    }

    private func line(startingWith label: String) -> Substring? {
        lines.first { $0.trimmingCharacters(in: .whitespaces).hasPrefix(label) }
    }

    /// `  12345 requests in 10.00s, 1.23MB read`.
    private func requestCount() throws(WrkError) -> Int {
        guard let line = lines.first(where: { $0.contains(" requests in ") }) else {
            throw WrkError(problem: "no 'N requests in' line", output: self)
        }
        guard let first = line.split(separator: " ").first, let count = Int(first) else {
            throw WrkError(problem: "the request count in '\(line)' is not a number", output: self)
        }
        return count
    }

    /// `Requests/sec:   1234.56`.
    private func number(in label: String) throws(WrkError) -> Double {
        guard let line = line(startingWith: label) else { throw WrkError(problem: "no '\(label)' line", output: self) }
        guard let field = line.split(separator: " ").last, let value = Double(field), value.isFinite else {
            throw WrkError(problem: "the value of '\(line)' is not a number", output: self)
        }
        return value
    }

    /// A latency distribution line, `     99%    1.51ms`: wrk writes `540.00us`, `1.51ms`, `2.00s` or `1.00m`.
    private func percentileMilliseconds(_ label: String) throws(WrkError) -> Double {
        guard let line = line(startingWith: label) else {
            throw WrkError(problem: "no '\(label)' line in the latency distribution (was --latency passed?)", output: self)
        }
        guard let field = line.split(separator: " ").last else { throw WrkError(problem: "'\(line)' has no value", output: self) }
        let units: [(suffix: String, milliseconds: Double)] = [("us", 0.001), ("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)]
        guard let unit = units.first(where: { field.hasSuffix($0.suffix) }), let value = Double(field.dropLast(unit.suffix.count)) else {
            throw WrkError(problem: "the latency '\(field)' of '\(label)' is not a number with a unit wrk uses", output: self)
        }
        return value * unit.milliseconds
    }
}
