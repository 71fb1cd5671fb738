import BenchmarkSupport
import Foundation

/// wrk, the HTTP load generator, for the measurements that need many requests from clients that
/// cost the 2-core machine little: a Lua script picks each request.
enum Wrk {
    struct Result {
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
        process.arguments = ["-t1", "-c\(connections)", "-d\(seconds)s", "-s", file.path, "--latency", "http://127.0.0.1:\(port)"]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard !text.contains("Non-2xx") else { throw BenchmarkError("wrk saw errors:\n\(text)") }
        return Result(
            requestsPerSecond: value(after: "Requests/sec:", in: text),
            p50Milliseconds: milliseconds(after: "50%", in: text),
            p99Milliseconds: milliseconds(after: "99%", in: text)
        )
    }

    private static func value(after label: String, in text: String) -> Double {
        guard let line = text.split(separator: "\n").first(where: { $0.contains(label) }) else { return 0 }
        return Double(line.split(separator: " ").last.map(String.init) ?? "") ?? 0
    }

    /// wrk prints latencies as `540.00us`, `1.51ms` or `2.00s`.
    private static func milliseconds(after label: String, in text: String) -> Double {
        guard let line = text.split(separator: "\n").first(where: { $0.trimmingCharacters(in: .whitespaces).hasPrefix(label) }),
            let field = line.split(separator: " ").last
        else { return 0 }
        let units: [(String, Double)] = [("us", 0.001), ("ms", 1), ("s", 1000)]
        for (suffix, factor) in units where field.hasSuffix(suffix) {
            return (Double(field.dropLast(suffix.count)) ?? 0) * factor
        }
        return 0
    }
}
