import BenchmarkSupport
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import TwinflowCodec

/// HTTP/1.1 keep-alive connections to the service, one per concurrent client.
struct ClientPool: Sendable {
    let clients: [TestClient]

    init(port: Int, count: Int) async throws {
        // A query that scans 100,000 twins may take longer than the client's usual 15 s.
        clients = (0..<count).map { _ in TestClient(host: "127.0.0.1", port: port, configuration: .init(timeout: .seconds(300))) }
        for client in clients { client.connect() }
    }

    var first: TestClient { clients[0] }

    func shutdown() async throws {
        for client in clients { try await client.shutdown() }
    }

    func expect(_ status: HTTPResponse.Status, _ response: TestClient.Response) throws {
        guard response.status == status else {
            throw BenchmarkError("expected \(status), got \(response.status): \(response.body.map { String(buffer: $0) } ?? "")")
        }
    }

    /// Expects a `200 OK` query page of exactly `count` rows, so a query that finds nothing is not timed as a fast one.
    func expectRows(_ count: Int, _ response: TestClient.Response, query: String) throws {
        try expect(.ok, response)
        let body = response.body.map { String(buffer: $0) } ?? ""
        guard let rows = try? JSONValue.parse(Array(body.utf8))["value"]?.arrayValue else {
            throw BenchmarkError("the query \(query) answered without a value array: \(body)")
        }
        guard rows.count == count else {
            throw BenchmarkError("the query \(query) found \(rows.count) rows, not \(count): \(body)")
        }
    }

    /// Runs `body` for each index, spread over every client.
    func forEach(_ indices: Range<Int>, _ body: @escaping @Sendable (TestClient, Int) async throws -> Void) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (slot, client) in clients.enumerated() {
                group.addTask {
                    for index in stride(from: indices.lowerBound + slot, to: indices.upperBound, by: clients.count) {
                        try await body(client, index)
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    /// Runs `count` requests over `concurrency` clients and returns each one's latency; with a
    /// `budget`, a client stops early once the budget is spent and it ran `minimum` requests.
    func latencies(
        count: Int, concurrency: Int, minimum: Int = 0, budget: Duration? = nil,
        _ body: @escaping @Sendable (TestClient, Int) async throws -> Void
    ) async throws -> Latencies {
        let deadline = budget.map { ContinuousClock.now + $0 }
        return try await withThrowingTaskGroup(of: [Double].self) { group in
            for slot in 0..<concurrency {
                let client = clients[slot]
                group.addTask {
                    var samples: [Double] = []
                    for index in stride(from: slot, to: count, by: concurrency) {
                        if let deadline, samples.count >= minimum, ContinuousClock.now >= deadline { break }
                        let start = ContinuousClock.now
                        try await body(client, index)
                        samples.append((ContinuousClock.now - start).seconds * 1000)
                    }
                    return samples
                }
            }
            var all: [Double] = []
            for try await samples in group { all += samples }
            return Latencies(milliseconds: all.sorted())
        }
    }
}

struct Latencies {
    var milliseconds: [Double]

    func percentile(_ percent: Double) -> Double {
        guard !milliseconds.isEmpty else { return 0 }
        let index = min(milliseconds.count - 1, Int((Double(milliseconds.count) * percent / 100).rounded(.up)) - 1)
        return milliseconds[max(0, index)]
    }
}

extension TestClient {
    func put(_ uri: String, body: JSONValue) async throws -> TestClient.Response {
        try await put(uri, body: ByteBuffer(bytes: body.serialized()))
    }

    func post(_ uri: String, body: JSONValue) async throws -> TestClient.Response {
        try await post(uri, body: ByteBuffer(bytes: body.serialized()))
    }

    func patch(_ uri: String, body: JSONValue) async throws -> TestClient.Response {
        try await execute(TestClient.Request(uri, method: .patch, headers: [:], body: ByteBuffer(bytes: body.serialized())))
    }
}

/// The twin-service built beside this executable, on a fresh store and a port of its own.
final class TwinServiceChild: Sendable {
    private let child: ServiceChild
    private let directory: URL

    var port: Int { child.httpPort }

    /// twin-service on `bootstrap`'s Kafka, so its notifications flow while it is measured; in the
    /// PostgreSQL database `databaseURL` when given.
    init(bootstrap: String, databaseURL: String? = nil) throws {
        directory = FileManager.default.temporaryDirectory.appending(path: "twin-bench-\(UUID())")
        child = try ServiceChild(
            "twin-service",
            environment: [
                "TWINFLOW_DATA_DIR": directory.path, "LOG_LEVEL": "warning", "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                "TWINFLOW_DATABASE_URL": databaseURL ?? "",
            ])
    }

    /// Waits until `/healthz` answers.
    func waitUntilReady() async throws {
        try await child.waitUntilAnswering(within: .seconds(30))
    }

    func stop() {
        child.stop()
        try? FileManager.default.removeItem(at: directory)
    }
}
