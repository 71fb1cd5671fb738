import Foundation

/// A Twinflow service as a child process on a devbroker, logging errors only. A killed member's
/// partitions move on once its session expires (6 s here, heartbeats every second).
public func serviceProcess(
    _ name: String, bootstrap: String, port: Int, environment extra: [String: String] = [:], capturingStandardError: Bool = false
) throws -> ChildProcess {
    var environment = ProcessInfo.processInfo.environment
    environment["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap
    environment["HTTP_PORT"] = "\(port)"
    environment["LOG_LEVEL"] = "error"
    environment["KAFKA_CONFIG_SESSION_TIMEOUT_MS"] = "6000"
    environment["KAFKA_CONFIG_HEARTBEAT_INTERVAL_MS"] = "1000"
    environment.merge(extra) { _, new in new }
    return try ChildProcess(name, environment: environment, capturingStandardError: capturingStandardError)
}

/// `twin-service` as a child process with a store in `dataDirectory` (a new scratch folder when nil),
/// or in the PostgreSQL database at `databaseURL`.
public func twinServiceProcess(
    bootstrap: String, port: Int = unusedPort(), dataDirectory: URL? = nil, databaseURL: String? = nil, capturingStandardError: Bool = false
) throws -> ChildProcess {
    let directory = dataDirectory ?? ScratchDirectory.make("twin-service")
    var environment = ["TWINFLOW_DATA_DIR": directory.path]
    if let databaseURL { environment["TWINFLOW_DATABASE_URL"] = databaseURL }
    return try serviceProcess(
        "twin-service", bootstrap: bootstrap, port: port, environment: environment, capturingStandardError: capturingStandardError)
}

/// Waits until the service on `port` answers `/readyz` with 200 (and `containing`, when given).
public func waitUntilReady(port: Int, containing text: String? = nil, timeout: Duration = .seconds(60)) async -> Bool {
    await eventually(timeout: timeout) {
        guard let reply = try? await httpRequest("http://127.0.0.1:\(port)/readyz") else { return false }
        return reply.status == 200 && (text.map { reply.text.contains($0) } ?? true)
    }
}
