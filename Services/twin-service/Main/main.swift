import Foundation
import Logging
import TwinGraph
import TwinService
import TwinflowPostgres
import TwinflowRuntime

#if canImport(CTCMalloc)
import CTCMalloc  // links tcmalloc, the services' allocator (see Shared/CTCMalloc)
#endif

/// twin-service: the twin graph behind ADT's REST API on HTTP_PORT (8080), stored in
/// `$TWINFLOW_DATA_DIR/twins.sqlite`, or with `TWINFLOW_DATABASE_URL` in PostgreSQL, shared by
/// every instance (`TWINFLOW_DATABASE_POOL_SIZE` read connections, 8); applies `twins.commands` and publishes its notifications and
/// telemetry through the event routes.
await ServiceRunner.run(name: "twin-service", defaultHTTPPort: 8080) { context in
    let environment = context.environment
    let store: any TwinStore
    let storeDescription: String
    if let text = environment.variables["TWINFLOW_DATABASE_URL"], !text.isEmpty {
        let url: DatabaseURL
        do {
            url = try DatabaseURL(text)
        } catch {
            throw SettingError(variable: "TWINFLOW_DATABASE_URL", value: SettingError.redactingPassword(text), expected: "\(error)")
        }
        let connections = try environment.integer("TWINFLOW_DATABASE_POOL_SIZE", in: 1...1_000) ?? 8
        store = try await PostgresTwinStore(url: url, connections: connections, logger: context.logger)
        storeDescription = "postgres://\(url.host):\(url.port)/\(url.database)"
    } else {
        let path = URL(filePath: environment.dataDirectory).appending(path: "twins.sqlite").path
        store = try SQLiteTwinStore(
            path: path, synchronous: try environment.choice("TWINFLOW_SQLITE_SYNCHRONOUS", of: ["NORMAL", "FULL", "EXTRA"]) ?? "NORMAL")
        storeDescription = path
    }
    let graph = try await DigitalTwinGraph(
        store: store,
        instanceName: environment.variables["TWINFLOW_INSTANCE_NAME"] ?? "twinflow.local",
        endpoints: try TwinServiceKafka.endpoints(environment)
    )
    for broken in graph.brokenModels {
        context.logger.error(
            "a stored model cannot be loaded; no twin can be of it until it is deleted and uploaded again",
            metadata: ["model": "\(broken.model ?? "")", "reason": "\(broken.message)"])
    }
    TwinServiceRoutes.add(to: context.router, graph: graph)
    context.logger.info("twin graph open", metadata: ["store": "\(storeDescription)"])
    return try TwinServiceKafka.services(graph: graph, environment: environment, logger: context.logger, readiness: context.readiness)
}
